"""Message providers, one interface (`base.Provider`): send one message or raise
Transient/PermanentSendError. Rate limits and retries wrap every provider alike (`sender.py`)."""
