"""The send policy, with no I/O: may this message go to this customer now, and to which address?

Consent is read per channel and message type from the profile (`consent.<channel>.<type>`, or
`consent.<channel>.all`). Transactional messages go unless explicitly refused; every other type
needs an explicit grant. An `unsubscribed` trait refuses everything but transactional messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ADDRESS_TRAIT = {"email": "email", "sms": "phone", "push": "push_token", "webhook": "webhook_url"}
TRANSACTIONAL = "transactional"


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str
    address: str | None = None


def _granted(consent: dict[str, Any], channel: str, message_type: str) -> bool | None:
    per_channel = consent.get(channel) or {}
    for key in (message_type, "all"):
        entry = per_channel.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("granted"), bool):
            return bool(entry["granted"])
        if isinstance(entry, bool):
            return entry
    return None


def decide(profile: dict[str, Any], channel: str, message_type: str) -> Decision:
    traits = profile.get("traits") or {}
    if traits.get("erased"):
        return Decision(False, "erased")
    address = traits.get(ADDRESS_TRAIT.get(channel, channel))
    if not isinstance(address, str) or not address.strip():
        return Decision(False, "no address")
    granted = _granted(profile.get("consent") or {}, channel, message_type)
    if message_type == TRANSACTIONAL:
        allowed = granted is not False
    else:
        allowed = granted is True and not traits.get("unsubscribed")
    if not allowed:
        return Decision(False, "no consent", address)
    return Decision(True, "consent", address)
