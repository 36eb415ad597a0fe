"""Message lifecycle events for `jm.events` (`Message Sent`, `Delivered`, `Bounced`, `Failed`,
`Opened`, `Clicked`, `Unsubscribed`): Segment track events of the customer as the profile
knows them, so profiles record engagement, segments use it and journeys branch on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.kafka import OutRecord
from shared.topics import EVENTS

SOURCE = "journeyman/channels"
SENT, DELIVERED, BOUNCED, FAILED = (
    "Message Sent", "Message Delivered", "Message Bounced", "Message Failed",
)  # fmt: skip
OPENED, CLICKED, UNSUBSCRIBED = "Message Opened", "Message Clicked", "Message Unsubscribed"
MESSAGE_FIELDS = ("dispatch_id", "channel", "message_type", "template", "journey_id", "step_id")


def _who(profile: Mapping[str, Any], profile_id: str) -> tuple[dict[str, str], str]:
    if profile.get("user_id"):
        return {"userId": str(profile["user_id"])}, f"user:{profile['user_id']}"
    anonymous = str(profile.get("anonymous_id") or profile_id)
    return {"anonymousId": anonymous}, f"anon:{anonymous}"


def record_for(message: dict[str, Any], key: str, at: datetime) -> OutRecord:
    return OutRecord(
        EVENTS,
        dumps(message),
        key.encode(),
        binary_headers(
            event_id=str(message["messageId"]), event_type=f"segment.{message['type']}",
            source=SOURCE, time=at,
        ),
    )  # fmt: skip


def message_event(
    name: str, attempt: Mapping[str, Any], profile: Mapping[str, Any], at: datetime, *,
    extra: Mapping[str, Any] | None = None, discriminator: str = "",
) -> OutRecord:  # fmt: skip
    """`attempt` carries MESSAGE_FIELDS and `profile_id`; the messageId is stable per dispatch
    and event (plus `discriminator`, e.g. the clicked URL), so a replay is deduplicated."""
    who, key = _who(profile, str(attempt["profile_id"]))
    suffix = name.split()[1].lower() + (f":{discriminator}" if discriminator else "")
    message = {
        "type": "track",
        "event": name,
        "messageId": f"{suffix}:{attempt['dispatch_id']}",
        "timestamp": at.isoformat(),
        "properties": {**{f: attempt.get(f) for f in MESSAGE_FIELDS}, **(extra or {})},
        "context": {"journeyman": {"profile_id": attempt["profile_id"]}},
        **who,
    }
    return record_for(message, key, at)


def consent_refusal(
    profile: Mapping[str, Any], profile_id: str, channel: str, message_type: str, *,
    dispatch_id: str, at: datetime,
) -> OutRecord:  # fmt: skip
    """The identify the profile service applies as a consent change (its own rules: newer
    wins, history kept), so this service never writes consent itself."""
    who, key = _who(profile, profile_id)
    traits = {"consent": {channel: {message_type: False}}}
    message = {
        "type": "identify",
        "messageId": f"unsubscribe:{dispatch_id}:{channel}:{message_type}",
        "timestamp": at.isoformat(),
        "traits": traits,
        "context": {"journeyman": {"profile_id": profile_id, "source": "unsubscribe-link"}},
        **who,
    }
    return record_for(message, key, at)
