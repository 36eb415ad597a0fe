"""Kafka handler of `jm.profile-events`: decode, then start journeys and queue their dispatches
in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from services.journey.engine import CompiledJourney
from services.journey.models import outbox
from services.journey.service import start_journeys
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import ProfileEventRecord
from shared.decoding import decode_all, model_decoder
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

_decode = model_decoder(ProfileEventRecord)


def profile_events_handler(
    runtime: Runtime, relay: OutboxRelay, journeys: Sequence[CompiledJourney]
) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, _decode)
        batch = [(item, rec.headers.get("traceparent")) for rec, item in decoded]
        async with runtime.engine.begin() as conn:
            await add_to_outbox(conn, outbox, await start_journeys(conn, journeys, batch))
        relay.wake()
        return rejected

    return handle
