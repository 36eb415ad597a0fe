"""Kafka handlers of `jm.profile-events` and `jm.segment-changes`: decode, then one use-case
call per batch in one transaction that also writes the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.journey.engine import Engine
from services.journey.models import outbox
from services.journey.registry import Registry
from services.journey.service import apply_profile_events, apply_segment_changes
from shared.clock import Clock
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import ProfileEventRecord, SegmentChange
from shared.decoding import decode_all, model_decoder
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime
from shared.topics import PROFILE_EVENTS

_profile_event = model_decoder(ProfileEventRecord)
_segment_change = model_decoder(SegmentChange)


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
        dates: dict[tuple[str, str], datetime] = {}  # forgotten if the transaction fails
        async with relay.transaction(runtime.engine) as conn:
            out = await apply_profile_events(conn, registry, engine, batch, now, dates=dates)
            out += await apply_segment_changes(
                conn, registry, engine, [c for _, c in decoded_changes], now
            )
            await add_to_outbox(conn, outbox, out)
        registry.dates_committed(dates)
        return [*rejected, *rejected_changes]

    return handle
