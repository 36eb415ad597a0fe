"""Kafka handler of `jm.profile-events` for segment membership."""

from __future__ import annotations

from collections.abc import Sequence

from services.segmenter.models import outbox
from services.segmenter.registry import Registry
from services.segmenter.service import apply_profile_events
from shared.clock import Clock
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import ProfileEventRecord
from shared.decoding import decode_all, model_decoder
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

_decode = model_decoder(ProfileEventRecord)


def profile_events_handler(
    runtime: Runtime, relay: OutboxRelay, registry: Registry, clock: Clock
) -> BatchHandler:
    """Applies a batch in one transaction with its outbox records, then wakes the relay."""

    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, _decode)
        async with relay.transaction(runtime.engine) as conn:
            if not registry.synced:
                await registry.sync(conn)
            changes = await apply_profile_events(
                conn, registry.catalog,
                [(d, r.headers.get("traceparent")) for r, d in decoded], clock.now(),
            )  # fmt: skip
            await add_to_outbox(conn, outbox, changes)
        return rejected

    return handle
