"""Kafka handlers of the channels service: the profile projection and the dispatch requests."""

from __future__ import annotations

from collections.abc import Sequence

from services.channels import repository
from services.channels.pipeline import Pipeline
from shared.consumer import BatchHandler, Record, Rejected
from shared.contracts import DispatchRequest, ProfileSnapshot
from shared.decoding import decode_all, model_decoder
from shared.runtime import Runtime

_decode_profile = model_decoder(ProfileSnapshot)
_decode_dispatch = model_decoder(DispatchRequest)


def profiles_handler(runtime: Runtime) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        live = [r for r in records if r.value is not None]  # compaction tombstones carry nothing
        decoded, rejected = decode_all(live, _decode_profile)
        async with runtime.engine.begin() as conn:
            await repository.upsert_contacts(
                conn, [(p.profile_id, p.version, (r.value or b"").decode()) for r, p in decoded]
            )
        return rejected

    return handle


def dispatch_handler(pipeline: Pipeline) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, _decode_dispatch)
        await pipeline.accept([d for _, d in decoded])
        return rejected

    return handle
