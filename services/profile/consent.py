"""Consent and preferences, with no I/O: per channel and message type, each entry keeping the
source and time of its last change, so an older change arriving late never overrides a newer
one, and a merge of two profiles keeps the most restrictive answer.

Shape (what channels reads): `consent[channel][message_type] = {"granted", "source", "at"}`.
`unsubscribed` is a trait (channels refuses everything but transactional while it is true); it
is recorded in the history as channel `all`, message type `all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNELS = ("email", "sms", "push")
MESSAGE_TYPES = ("marketing", "newsletter", "transactional")
ALL = "all"
TRANSACTIONAL = "transactional"


@dataclass(frozen=True)
class ConsentChange:
    """One change, as stored in the consent history and told on `Consent Changed`."""

    channel: str
    message_type: str
    granted: bool
    source: str
    at: str  # ISO time of the change (the event's timestamp, or the request's time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "message_type": self.message_type,
            "granted": self.granted,
            "source": self.source,
            "at": self.at,
        }


class InvalidConsent(ValueError):
    """A consent document that is not `{channel: {message_type: bool}}`."""


def parse_update(update: Any, where: str = "consent") -> dict[str, dict[str, bool]]:
    """Validate `{channel: {message_type: bool}}`; raises InvalidConsent naming the field."""
    if not isinstance(update, dict):
        raise InvalidConsent(f"{where}: must be an object of channels")
    out: dict[str, dict[str, bool]] = {}
    for channel, types in update.items():
        if not isinstance(types, dict):
            raise InvalidConsent(f"{where}.{channel}: must be an object of message types")
        for message_type, granted in types.items():
            if not isinstance(granted, bool):
                raise InvalidConsent(f"{where}.{channel}.{message_type}: must be true or false")
            out.setdefault(str(channel), {})[str(message_type)] = granted
    return out


def apply_update(
    consent: dict[str, Any], update: dict[str, dict[str, bool]], source: str, at: str
) -> list[ConsentChange]:
    """Set each entry unless a newer change is already held; return what really changed."""
    changes = []
    for channel, types in update.items():
        current = consent.setdefault(channel, {})
        for message_type, granted in types.items():
            entry = current.get(message_type)
            if isinstance(entry, dict):
                if str(entry.get("at", "")) > at:
                    continue  # a newer decision is already held
                if entry.get("granted") is granted:
                    continue
            current[message_type] = {"granted": granted, "source": source, "at": at}
            changes.append(ConsentChange(channel, message_type, granted, source, at))
    return changes


def unsubscribe_all(
    consent: dict[str, Any], channel: str, source: str, at: str
) -> list[ConsentChange]:
    """Refuse every non-transactional type held for a channel, and `all` for the rest."""
    types = {t for t in consent.get(channel, {}) if t != "transactional"} | {ALL}
    return apply_update(consent, {channel: dict.fromkeys(sorted(types), False)}, source, at)


def merge(survivor: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Most restrictive wins: a refusal on either side stands; between two answers alike the
    newer is kept; an entry only one side has is kept as it is."""
    out: dict[str, Any] = {ch: dict(types) for ch, types in survivor.items()}
    for channel, types in other.items():
        mine = out.setdefault(channel, {})
        for message_type, theirs in types.items():
            held = mine.get(message_type)
            if not isinstance(held, dict):
                mine[message_type] = theirs
            elif not isinstance(theirs, dict):
                continue
            elif held.get("granted") != theirs.get("granted"):
                mine[message_type] = held if held.get("granted") is False else theirs
            elif str(theirs.get("at", "")) > str(held.get("at", "")):
                mine[message_type] = theirs
    return out


def preference_grid(consent: dict[str, Any]) -> dict[str, dict[str, bool | None]]:
    """Channels x message types as a page shows them (None: never asked)."""
    channels = list(dict.fromkeys([*CHANNELS, *consent]))
    types = list(dict.fromkeys([*MESSAGE_TYPES, *(t for v in consent.values() for t in v)]))
    types = [t for t in types if t != ALL]
    grid: dict[str, dict[str, bool | None]] = {}
    for channel in channels:
        held = consent.get(channel, {})
        row: dict[str, bool | None] = {}
        for message_type in types:
            entry = held.get(message_type)
            row[message_type] = entry.get("granted") if isinstance(entry, dict) else None
        grid[channel] = row
    return grid
