"""Kafka handler of `jm.profile-events` for segment membership."""

from __future__ import annotations

from collections.abc import Sequence

from services.segmenter.definitions import CompiledSegment
from services.segmenter.models import outbox
from services.segmenter.service import evaluate
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import ProfileEventRecord
from shared.decoding import decode_all, model_decoder
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

_decode = model_decoder(ProfileEventRecord)


def profile_events_handler(
    runtime: Runtime, relay: OutboxRelay, segments: Sequence[CompiledSegment]
) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, _decode)
        async with runtime.engine.begin() as conn:
            await add_to_outbox(
                conn, outbox, await evaluate(conn, segments, [d for _, d in decoded])
            )
        relay.wake()
        return rejected

    return handle
