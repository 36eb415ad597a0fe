"""Segment HTTP messages to `jm.events` records: fill what Segment's API fills (messageId,
receivedAt, the type from the route), validate, key by identity, add CloudEvents headers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.events import Event, InvalidEvent, parse_event
from shared.kafka import OutRecord
from shared.topics import EVENTS

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 500


def prepare(
    message: dict[str, Any], type_: str | None, shared: dict[str, Any] | None = None
) -> Event:
    """Validate one HTTP message; raises InvalidEvent naming the field."""
    body = {**(shared or {}), **message}
    if type_ is not None:
        body["type"] = type_
    body.setdefault("messageId", f"api-{uuid.uuid4()}")
    body["receivedAt"] = datetime.now(UTC).isoformat()
    if len(dumps(body)) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"body: message larger than {MAX_MESSAGE_BYTES // 1024} KB")
    return parse_event(body)


def to_record(event: Event, traceparent: str | None) -> OutRecord:
    return OutRecord(
        EVENTS,
        dumps(event.to_wire()),
        event.identity().encode(),
        binary_headers(
            event_id=event.message_id,
            event_type=f"segment.{event.type}",
            source="journeyman/profile/http",
            time=event.timestamp,
            traceparent=traceparent,
        ),
    )
