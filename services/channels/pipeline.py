"""The send pipeline as the consumer and the background workers run it: decide (one
transaction, committed), deliver (no transaction), record (one transaction with the outbox).
Also the deferred-send worker and the sweeper of cut-off attempts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import deciding, delivery, repository
from services.channels.deciding import Claimed
from services.channels.delivery import Delivery
from services.channels.metrics import DEFERRED, OUTCOMES, UNKNOWN
from services.channels.models import outbox
from services.channels.policy import PolicyConfig
from shared.contracts import DispatchRequest
from shared.outbox import OutboxRelay, add_to_outbox

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


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

    async def dispatch(self, requests: Sequence[DispatchRequest]) -> int:
        """A batch from `jm.dispatch`; returns how many were sent to a provider."""
        async with self.engine.begin() as conn:
            claimed = await deciding.claim(conn, requests, self.policy, self.clock())
        return await self._send(claimed)

    async def run_due(self, limit: int = 2_000) -> int:
        """Deferred dispatches now due: decided again and, if allowed, sent."""
        async with self.engine.begin() as conn:
            claimed = await deciding.decide_due(conn, self.policy, self.clock(), limit)
            DEFERRED.set(await repository.pending_deferrals(conn))
        return await self._send(claimed)

    async def _send(self, claimed: Sequence[Claimed]) -> int:
        if not claimed:
            return 0
        ids = {c.request.dispatch_id for c in claimed}
        self.in_flight |= ids
        try:
            outcomes = await self.delivery.deliver(claimed)
            async with self.engine.begin() as conn:
                records = await delivery.record(conn, outcomes, self.clock())
                await add_to_outbox(conn, outbox, records)
        finally:
            self.in_flight -= ids
        self.relay.wake()
        for o in outcomes:
            OUTCOMES.labels(o.claimed.request.channel, o.status).inc()
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
