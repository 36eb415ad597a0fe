"""Kafka handler of `jm.events`: decode, apply in one transaction with the outbox, wake the
relay."""

from __future__ import annotations

from collections.abc import Sequence

from services.profile.models import outbox
from services.profile.service import IncomingEvent, apply_events
from shared.consumer import BatchHandler, Record, Rejected
from shared.decoding import decode_all, decode_event
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime


def events_handler(runtime: Runtime, relay: OutboxRelay) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, decode_event)
        batch = [IncomingEvent(event, rec.headers.get("traceparent")) for rec, event in decoded]
        async with runtime.engine.begin() as conn:
            await add_to_outbox(conn, outbox, await apply_events(conn, batch))
        relay.wake()
        return rejected

    return handle
