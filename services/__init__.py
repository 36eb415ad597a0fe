"""The four Journeyman services; each imports only `shared`, never another service."""
