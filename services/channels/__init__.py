"""Channels service: send policy, templates, providers, never-twice sends, delivery events."""
