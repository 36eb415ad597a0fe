"""Message providers, one interface each: send or raise Transient/PermanentSendError."""
