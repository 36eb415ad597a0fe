"""Segment HTTP messages to `jm.events` records: read the body within its size limit (gzip
included, as Segment and RudderStack clients may send), fill what Segment's API fills
(messageId, receivedAt, the type from the route), validate, key by identity, add CloudEvents
headers."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request

from services.profile.validation import check_event
from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.events import Event, InvalidEvent, parse_event
from shared.kafka import OutRecord
from shared.topics import EVENTS

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 500


class BodyTooLarge(ValueError):
    """A request body over its limit (HTTP 413)."""


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object in the body; BodyTooLarge or InvalidEvent (400) naming the problem."""
    too_large = BodyTooLarge(f"body: larger than {limit // 1024} KB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit * 4:
        raise too_large
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > (limit * 4 if gzipped else limit):
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    if gzipped:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise InvalidEvent("body: not valid gzip") from exc
    if len(body) > limit:
        raise too_large
    if b"\\u0000" in body:
        raise InvalidEvent("body: NUL characters (\\u0000) are not accepted")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"body: malformed JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("body: a JSON object is required")
    return data


def prepare(
    message: dict[str, Any],
    type_: str | None,
    shared: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Event:
    """Validate one HTTP message; raises InvalidEvent naming the field."""
    now = now or datetime.now(UTC)
    body = {**(shared or {}), **message}
    if type_ is not None:
        body["type"] = type_
    body.setdefault("messageId", f"api-{uuid.uuid4()}")
    body["receivedAt"] = now.isoformat()
    if len(dumps(body)) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"body: message larger than {MAX_MESSAGE_BYTES // 1024} KB")
    event = parse_event(body)
    check_event(event, now)
    return event


def to_record(event: Event, traceparent: str | None) -> OutRecord:
    return OutRecord(
        EVENTS,
        event.wire_json(),
        event.identity().encode(),
        binary_headers(
            event_id=event.message_id,
            event_type=f"segment.{event.type}",
            source="journeyman/profile/http",
            time=event.timestamp,
            traceparent=traceparent,
        ),
    )
