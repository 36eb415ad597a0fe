"""Profile service: identity, profiles, behaviour, consent, timeline, ingestion API."""
