"""Background loops of a journey replica: the timer worker (any number of replicas drain the
timers table side by side), the webhook caller and the registry refresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from services.journey import catalog, repository
from services.journey.engine import Engine
from services.journey.firing import Fired, fire_due
from services.journey.models import outbox
from services.journey.publishing import plan_schedules
from services.journey.registry import Registry
from shared.clock import Clock
from shared.errors import is_transient
from shared.outbox import OutboxRelay, add_to_outbox

log = logging.getLogger(__name__)
TIMERS_FIRED = Counter("journey_timers_fired_total", "Durable timers fired.")
TIMER_LATENESS = Histogram(
    "journey_timer_lateness_seconds",
    "How late timers fired after their due time.",
    buckets=(0.01, 0.1, 0.5, 1, 5, 30, 60, 300, 3600),
)


class Loop:
    """Runs `step` until stopped; a step that did a full batch runs again at once."""

    def __init__(self, name: str, step: Callable[[], Awaitable[bool]], interval_s: float) -> None:
        self.name, self._step, self._interval = name, step, interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.problem: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = self._interval
        while True:
            try:
                busy = await self._step()
                self.problem, delay = None, self._interval
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("%s failed", self.name)
                self.problem = f"{type(exc).__name__}: {exc}"
                busy, delay = False, min(delay * 2, 10.0)
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)


class TimerWorker:
    def __init__(  # noqa: PLR0917
        self,
        db: AsyncEngine,
        registry: Registry,
        engine: Engine,
        relay: OutboxRelay,
        clock: Clock,
        batch: int,
    ) -> None:
        self._db, self._registry, self._engine = db, registry, engine
        self._relay, self._clock, self._batch = relay, clock, batch
        self.fired = 0
        self.lateness_s: deque[float] = deque(maxlen=200_000)  # recent firings, for benchmarks

    async def step(self) -> bool:
        """One batch of due timers; True when the batch was full (more may be due)."""
        result = await self.fire_once()
        return result.claimed >= self._batch

    async def fire_once(self) -> Fired:
        async with self._relay.transaction(self._db) as conn:
            result = await fire_due(
                conn, self._registry, self._engine, self._clock.now(), self._batch
            )
            await add_to_outbox(conn, outbox, result.records)
        self.fired += result.fired
        TIMERS_FIRED.inc(result.fired)
        for late in result.lateness_s:
            TIMER_LATENESS.observe(late)
        self.lateness_s.extend(result.lateness_s)
        return result


class Refresher:
    """Picks up versions and statuses other replicas (or the API) published."""

    def __init__(
        self, db: AsyncEngine, registry: Registry, clock: Clock, retention: timedelta
    ) -> None:
        self._db, self._registry, self._clock = db, registry, clock
        self._retention = retention

    async def step(self) -> bool:
        async with self._db.begin() as conn:
            stored, status = await catalog.stored(conn)
            await plan_schedules(conn, self._registry, self._clock.now())
            await repository.prune_seen(conn, self._clock.now() - self._retention)
        registry = self._registry
        for journey in stored:
            if (journey.id, journey.version) not in registry.versions:
                registry.add(journey)
        if status != {k: registry.status.get(k) for k in status}:
            registry.status.update(status)
            registry.changed()
        return False
