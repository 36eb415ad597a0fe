"""Kafka handlers of `jm.profile-events` and `jm.segment-changes`: decode, then one use-case
call per batch in one transaction that also writes the outbox."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from services.journey.engine import Engine
from services.journey.models import outbox
from services.journey.registry import Registry
from services.journey.service import apply_profile_events, apply_segment_changes
from shared.clock import Clock
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import ProfileEventRecord, SegmentChange
from shared.decoding import decode_all, model_decoder
from shared.events import describe_errors
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime
from shared.topics import PROFILE_EVENTS

_segment_change = model_decoder(SegmentChange)


def _profile_event(record: Record) -> ProfileEventRecord:
    """`model_decoder(ProfileEventRecord)`, validating from the bytes (pydantic parses the
    JSON itself: half the cost of building the dict with orjson and validating that)."""
    if record.value is None:
        raise ValueError("empty record value (tombstone) where a message was expected")
    try:
        return ProfileEventRecord.model_validate_json(record.value)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ValueError(f"malformed JSON: {describe_errors(exc)}") from exc
        raise ValueError(f"invalid ProfileEventRecord: {describe_errors(exc)}") from exc


def events_handler(
    runtime: Runtime, relay: OutboxRelay, registry: Registry, engine: Engine, clock: Clock
) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        events = [r for r in records if r.topic == PROFILE_EVENTS]
        changes = [r for r in records if r.topic != PROFILE_EVENTS]
        decoded, rejected = decode_all(events, _profile_event)
        decoded_changes, rejected_changes = decode_all(changes, _segment_change)
        batch = [(item, rec.headers.get("traceparent")) for rec, item in decoded]
        now = clock.now()
        async with runtime.engine.begin() as conn:
            out = await apply_profile_events(conn, registry, engine, batch, now)
            out += await apply_segment_changes(
                conn, registry, engine, [c for _, c in decoded_changes], now
            )
            await add_to_outbox(conn, outbox, out)
        relay.wake()
        return [*rejected, *rejected_changes]

    return handle
