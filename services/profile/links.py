"""Signed customer links of the profile service. Channels signs the same way when it renders a
message (`LinkSigner(settings.link_secret, "unsubscribe" | "preferences")` over
`{"profile_id", "channel", "message_type"}`) and points at `<public_url>/v1/unsubscribe/<token>`
and `<public_url>/v1/preferences/<token>`; this module is the profile side of that agreement."""

from __future__ import annotations

from typing import Any

from shared.settings import Settings
from shared.signing import LinkSigner

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"


def signer(settings: Settings, purpose: str) -> LinkSigner:
    return LinkSigner(settings.link_secret.get_secret_value(), purpose)


def link(
    settings: Settings,
    purpose: str,
    profile_id: str,
    channel: str | None = None,
    message_type: str | None = None,
) -> str:
    payload: dict[str, Any] = {"profile_id": profile_id, "channel": channel}
    payload["message_type"] = message_type
    token = signer(settings, purpose).sign(payload)
    return f"{settings.public_url.rstrip('/')}/v1/{purpose}/{token}"
