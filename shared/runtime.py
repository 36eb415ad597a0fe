"""What a running service owns: engine, producer, consumers, outbox relay. Built at start-up
(never at import), started in order, stopped in reverse, and asked about readiness."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.consumer import BatchConsumer, BatchHandler
from shared.db import create_engine, ping
from shared.errors import is_transient
from shared.kafka import Producer
from shared.outbox import OutboxRelay
from shared.settings import Settings

log = logging.getLogger(__name__)


class Runtime:
    """Clients of one service process; `state` holds what the service's own wiring adds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings)
        self.producer = Producer(settings)
        self.consumers: list[BatchConsumer] = []
        self.relays: list[OutboxRelay] = []
        self.state: dict[str, Any] = {}
        self._stoppers: list[Callable[[], Awaitable[None]]] = []

    def add_consumer(
        self, topics: Sequence[str], group: str, handler: BatchHandler, lanes: int = 1
    ) -> None:
        self.consumers.append(
            BatchConsumer(
                self.settings,
                topics=topics,
                group=group,
                handler=handler,
                producer=self.producer,
                lanes=lanes,
            )
        )

    def add_relay(self, table: Table) -> OutboxRelay:
        relay = OutboxRelay(
            self.engine,
            table,
            self.producer,
            poll_interval_s=self.settings.outbox_poll_interval_s,
            batch_size=self.settings.outbox_batch,
        )
        self.relays.append(relay)
        return relay

    def on_stop(self, stopper: Callable[[], Awaitable[None]]) -> None:
        self._stoppers.append(stopper)

    async def start(self) -> None:
        tune_gc()
        await _until_up("broker", self.producer.start)
        for relay in self.relays:
            await relay.start()
        for consumer in self.consumers:
            await _until_up(f"consumer {consumer.group}", consumer.start)

    async def stop(self) -> None:
        """Stop every part in reverse order, each within STOP_TIMEOUT_S: a part that hangs
        (a provider, the broker) is logged and left, and the rest still stop. Nothing is lost
        by that: offsets not committed are redelivered, outbox rows stay for the recovery
        path, and attempts left `sending` are the sweeper's (`unknown`)."""
        for stopper in reversed(self._stoppers):
            await _bounded(getattr(stopper, "__qualname__", "a stopper"), stopper())
        for consumer in self.consumers:
            await _bounded(f"consumer {consumer.group}", consumer.stop())
        for relay in self.relays:
            await _bounded("outbox relay", relay.stop())
        await _bounded("producer", self.producer.stop())
        await _bounded("database engine", self.engine.dispose())

    async def readiness(self) -> dict[str, str]:
        """`ok` or what is wrong, per dependency: the body of `/readyz`."""
        checks: dict[str, str] = {}
        checks["database"] = await _check(ping(self.engine))
        checks["broker"] = await _check(self.producer.ping())
        for consumer in self.consumers:
            checks[f"consumer:{consumer.group}"] = consumer.problem or "ok"
        for relay in self.relays:
            checks["outbox"] = relay.problem or "ok"
        return checks


STOP_TIMEOUT_S = 30.0


async def _bounded(what: str, stopping: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(stopping, timeout=STOP_TIMEOUT_S)
    except TimeoutError:
        log.warning("stopping %s took over %.0f s; left it", what, STOP_TIMEOUT_S)


#: Young objects (net of those freed) before a collection. CPython counts an allocation up and a
#: free down, so a batch whose objects are built and dropped again (a timer batch: ~220,000;
#: a dispatch batch: ~100,000) never starts one at this size, where at 50,000 the collector
#: walked the batch's live objects several times a batch: 4-5 µs a timer firing (~9 %) and
#: 17-27 µs a message in channels (5-7 %), measured with `gc.callbacks`; peak memory the same.
YOUNG_OBJECTS = 500_000


def tune_gc() -> None:
    """Collect young objects less often and never rescan what start-up built.

    A consumer holds thousands of decoded records per batch; with CPython's default thresholds
    the collector rescans them over and over (measured: a fifth of the profile service's time).
    Objects in reference cycles are still collected, after YOUNG_OBJECTS more live objects.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, 20, 100)


async def _check(probe: Awaitable[None]) -> str:
    try:
        await probe
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"[:300] or "unreachable"
    return "ok"


async def _until_up(what: str, start: Callable[[], Awaitable[None]]) -> None:
    """Start a client, waiting out a dependency that is not up yet (compose starts us together)."""
    delay = 0.5
    while True:
        try:
            await start()
            return
        except Exception as exc:
            if not is_transient(exc) and "connect" not in str(exc).lower():
                raise
            log.warning(
                "%s not reachable, retrying in %.1fs", what, delay, extra={"error": repr(exc)}
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
