"""The send pipeline as the consumer and the background workers run it: decide (one
transaction, committed), deliver (no transaction), record (one transaction with the outbox).
Also the deferred-send worker and the sweeper of cut-off attempts.

A batch is decided whole (so priorities and caps are judged across it), then delivered in
chunks side by side, each chunk recorded as soon as it is done: the database writes of one
chunk overlap the provider calls of the others instead of waiting for the slowest message.
The consumer goes further (`accept`): while one batch is delivered, the next is decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import deciding, delivery, repository
from services.channels.deciding import Claimed
from services.channels.delivery import Delivery
from services.channels.metrics import DEFERRED, OUTCOMES, UNKNOWN, count
from services.channels.models import outbox
from services.channels.policy import PolicyConfig
from shared.contracts import DispatchRequest
from shared.outbox import OutboxRelay, add_to_outbox

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
RECORD_CHUNK = 250
"""Messages recorded per transaction: small enough that recording overlaps sending, large
enough that a statement carries many rows."""


class Pipeline:
    def __init__(
        self, engine: AsyncEngine, relay: OutboxRelay, delivery: Delivery, policy: PolicyConfig,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.relay = relay
        self.delivery = delivery
        self.policy = policy
        self.clock = clock
        self.in_flight: set[str] = set()  # attempts this process is sending right now
        self._sending: asyncio.Task[int] | None = None  # the batch `accept` is delivering
        self._closing = False

    async def dispatch(self, requests: Sequence[DispatchRequest]) -> int:
        """A batch from `jm.dispatch`; returns how many were sent to a provider."""
        return await self._send(await self._claim(requests))

    async def accept(self, requests: Sequence[DispatchRequest]) -> None:
        """The consumer's step: decide this batch (committed), wait for the previous batch's
        delivery, then deliver this one in the background and return for the next batch.

        Returning before this batch is delivered changes nothing a crash could see: its
        attempts are committed `sending` before the offsets are, exactly as in `dispatch`, so
        a crash mid-delivery leaves them to the sweeper (`unknown`) either way, and a
        redelivered batch finds its dispatch ids taken. At most one batch is in delivery."""
        claimed = await self._claim(requests)
        # in flight from now: the sweeper must not take them for cut off while they wait
        # for the previous batch, however long its provider takes
        waiting = {c.request.dispatch_id for c in claimed}
        self.in_flight |= waiting
        try:
            await self.drain()
            if self._closing:  # stopping: nothing is left behind in the background
                await self._send(claimed)
                return
            self._sending = asyncio.create_task(self._send_logged(claimed))
        except BaseException:
            self.in_flight -= waiting  # not sent by this process: the sweeper's to judge
            raise

    async def drain(self) -> None:
        """Wait for the batch `accept` left in delivery."""
        if self._sending is not None:
            sending, self._sending = self._sending, None
            await sending

    async def close(self) -> None:
        """Before the providers close: finish the batch in delivery, start no other."""
        self._closing = True
        await self.drain()

    async def _claim(self, requests: Sequence[DispatchRequest]) -> list[Claimed]:
        async with self.engine.begin() as conn:
            return await deciding.claim(conn, requests, self.policy, self.clock())

    async def _send_logged(self, claimed: Sequence[Claimed]) -> int:
        """`_send` in the background: a failure is logged, and the attempts it leaves
        `sending` go to the sweeper (`unknown`), as the consumer's retry would leave them."""
        try:
            return await self._send(claimed)
        except Exception as exc:
            log.exception("recording a delivered batch failed", extra={"error": repr(exc)})
            return 0

    async def run_due(self, limit: int = 2_000) -> int:
        """Deferred dispatches now due: decided again and, if allowed, sent."""
        async with self.engine.begin() as conn:
            claimed = await deciding.decide_due(conn, self.policy, self.clock(), limit)
            DEFERRED.set(await repository.pending_deferrals(conn))
        return await self._send(claimed)

    async def _send(self, claimed: Sequence[Claimed]) -> int:
        if not claimed:
            return 0
        chunks = [claimed[i : i + RECORD_CHUNK] for i in range(0, len(claimed), RECORD_CHUNK)]
        # the delivery's own gate bounds the provider calls in flight across all chunks
        sent = await asyncio.gather(*(self._send_chunk(c) for c in chunks))
        return sum(sent)

    async def _send_chunk(self, claimed: Sequence[Claimed]) -> int:
        ids = {c.request.dispatch_id for c in claimed}
        self.in_flight |= ids
        try:
            outcomes = await self.delivery.deliver(claimed)
            async with self.relay.transaction(self.engine) as conn:
                records = await delivery.record(conn, outcomes, self.clock())
                await add_to_outbox(conn, outbox, records)
        finally:
            self.in_flight -= ids
        count(OUTCOMES, ((o.claimed.request.channel, o.status) for o in outcomes))
        return sum(1 for o in outcomes if o.status == "sent")

    async def sweep(self, unknown_after: timedelta, retry_types: Sequence[str]) -> int:
        """Mark attempts a dead process left `sending` as unknown (retrying configured types)."""
        async with self.engine.begin() as conn:
            found = await repository.mark_cut_off(
                # claimed_at is the database's now(): compared with real time, not the clock
                conn,
                datetime.now(UTC) - unknown_after,
                retry_types,
                self.clock(),
                sorted(self.in_flight),  # alive here, however long the provider takes
            )
            UNKNOWN.set(await repository.count_unknown(conn))
        if found:
            log.warning("sends cut off by a crash marked unknown", extra={"count": len(found)})
        return len(found)
