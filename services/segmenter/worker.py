"""The segmenter's clock loop: due timers, definition refreshes, fact pruning, scheduled RFM.

Each duty runs in its own transaction with the outbox, and the clock it reads is injected, so
a test moves time forward and calls `tick()` (or lets the loop notice) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.segmenter import repository
from services.segmenter.models import outbox
from services.segmenter.registry import Registry
from services.segmenter.rfm import RfmConfig
from services.segmenter.rfm_service import AlreadyRunning, recompute_rfm
from services.segmenter.settings import SegmenterSettings
from services.segmenter.timekeeping import run_due_timers
from shared.clock import Clock
from shared.errors import is_transient
from shared.outbox import OutboxRelay, add_to_outbox

log = logging.getLogger(__name__)


class ClockLoop:
    def __init__(
        self,
        engine: AsyncEngine,
        registry: Registry,
        relay: OutboxRelay,
        clock: Clock,
        *,
        settings: SegmenterSettings,
        rfm: RfmConfig | None,
    ) -> None:
        self._engine, self._registry, self._relay = engine, registry, relay
        self._clock, self._settings, self.rfm = clock, settings, rfm
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, datetime] = {}
        self.problem: str | None = None

    def _due(self, duty: str, every_s: float, now: datetime) -> bool:
        last = self._last.get(duty)
        if last is None:
            self._last[duty] = now  # first pass: start counting from now
            return duty == "refresh"
        if now - last >= timedelta(seconds=every_s):
            self._last[duty] = now
            return True
        return False

    async def run_timers(self) -> int:
        """Decide every due timer (several passes if needed); returns how many."""
        total = 0
        while True:
            now = self._clock.now()
            async with self._relay.transaction(self._engine) as conn:
                handled, out = await run_due_timers(
                    conn, self._registry.catalog, now, self._settings.segmenter_timer_batch
                )
                await add_to_outbox(conn, outbox, out)
            total += handled
            if handled < self._settings.segmenter_timer_batch:
                return total

    async def recompute_rfm(self, attempts: int = 3) -> dict[str, int]:
        """The recompute, run again on a transient failure: its lanes read under repeatable
        read, so a customer merged or erased while they write fails the run (serialization
        failure) where a single read-committed statement would have waited."""
        for attempt in range(1, attempts + 1):
            try:
                figures = await recompute_rfm(
                    self._engine, self.rfm, self._clock.now(), self._settings.segmenter_rfm_lanes
                )
                break
            except Exception as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
                log.warning("RFM recompute failed, running it again", extra={"error": repr(exc)})
        self._relay.wake()
        return figures

    async def tick(self) -> None:
        s, now = self._settings, self._clock.now()
        if not self._registry.synced:
            async with self._engine.begin() as conn:
                await self._registry.sync(conn)
        if self._due("refresh", s.segmenter_refresh_interval_s, now):
            async with self._engine.begin() as conn:
                await self._registry.refresh(conn)
        await self.run_timers()
        if self._due("prune", s.segmenter_prune_interval_s, now):
            async with self._engine.begin() as conn:
                await repository.prune_facts(conn, self._registry.catalog.horizon_days, now)
        if self._due("rfm", s.segmenter_rfm_interval_s, now):
            try:
                await self.recompute_rfm()
            except AlreadyRunning:
                log.info("RFM recompute skipped: another replica is running it")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="segmenter-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
                self.problem = None
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("segmenter clock pass failed")
                self.problem = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(self._settings.segmenter_clock_interval_s)
