"""The `journeyman` command and the machinery to run the whole system on one machine."""
