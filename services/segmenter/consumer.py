"""Kafka handler of `jm.profile-events` for segment membership."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.segmenter.models import outbox
from services.segmenter.registry import Registry
from services.segmenter.service import apply_profile_events
from shared.clock import Clock
from shared.consumer import Record, Rejected
from shared.contracts import ProfileEventRecord
from shared.decoding import decode_all, model_decoder
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

_decode = model_decoder(ProfileEventRecord)


class HeldConnection:
    """One connection kept for a consumer's transactions, one at a time.

    Checking a connection out of the pool costs a pre-ping and a reset on return (measured:
    3.4 ms of wall and 1.4 ms of CPU per transaction against 0.7 and 0.6 held), more than a
    small batch's own statements. The connection is dropped on any failure, so the next
    transaction starts on a fresh one, and at shutdown, after the transaction in flight."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock:
            if self._closed:  # stopping: whatever still runs takes the ordinary path
                async with self._engine.begin() as conn:
                    yield conn
                return
            if self._conn is None:
                self._conn = await self._engine.connect()
            try:
                async with self._conn.begin():
                    yield self._conn
            except BaseException:
                await self._drop()
                raise

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class ProfileEventsHandler:
    """Applies a batch in one transaction with its outbox records, then wakes the relay."""

    def __init__(
        self, runtime: Runtime, relay: OutboxRelay, registry: Registry, clock: Clock
    ) -> None:
        self._connection = HeldConnection(runtime.engine)
        self._relay, self._registry, self._clock = relay, registry, clock

    async def __call__(self, records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, _decode)
        async with self._connection.begin() as conn:
            if not self._registry.synced:
                await self._registry.sync(conn)
            changes = await apply_profile_events(
                conn, self._registry.catalog,
                [(d, r.headers.get("traceparent")) for r, d in decoded], self._clock.now(),
            )  # fmt: skip
            await add_to_outbox(conn, outbox, changes)
        self._relay.wake()
        return rejected

    async def close(self) -> None:
        await self._connection.close()


def profile_events_handler(
    runtime: Runtime, relay: OutboxRelay, registry: Registry, clock: Clock
) -> ProfileEventsHandler:
    return ProfileEventsHandler(runtime, relay, registry, clock)
