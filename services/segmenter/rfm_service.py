"""Use case: recompute RFM scores for the whole base and publish the segment changes.

The base is split into lanes by customer, each written by its own connection at once: the
recompute is PostgreSQL's work alone (a million customers never travel through Python), and
one backend uses one core. Every lane reads the same snapshot (exported by the first, imported
by the others), so the quintiles are the base's as of one instant, whichever lane scores a
customer. The lanes commit one after the other once every lane is done, or all roll back if
one fails (a crash between two commits leaves the other lane's changes to the next run). One
recompute runs at a time across replicas (an advisory lock the first lane takes first).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.segmenter import rfm_repository
from services.segmenter.rfm import RfmConfig
from shared.cloudevents import new_traceparent


class AlreadyRunning(Exception):
    """Another recompute (another replica's, or a request's) holds the run lock."""


async def recompute_rfm(
    engine: AsyncEngine, config: RfmConfig | None, now: datetime, lanes: int = 1
) -> dict[str, int]:
    """Scores, memberships, history and outbox rows committed, in `lanes` transactions."""
    if config is None or not config.enabled:
        return {"profiles": 0, "entered": 0, "exited": 0, "ms": 0}
    started = time.perf_counter()
    trace = new_traceparent()  # one recompute, one piece of work: one trace
    async with AsyncExitStack() as stack:
        conns: list[AsyncConnection] = []
        for _ in range(lanes):
            conn = await stack.enter_async_context(engine.connect())
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            await stack.enter_async_context(conn.begin())
            conns.append(conn)
        # First statement of the first lane: its snapshot is taken now, once the lock is ours,
        # so it sees everything the recompute before it committed.
        if not await rfm_repository.take_run_lock(conns[0]):
            raise AlreadyRunning("an RFM recompute is already running")
        if lanes > 1:
            snapshot = await rfm_repository.export_snapshot(conns[0])
            for conn in conns[1:]:
                await rfm_repository.share_snapshot(conn, snapshot)

        async def lane(i: int) -> dict[str, int]:
            part = rfm_repository.Lane(i, lanes)
            scored = await rfm_repository.score(conns[i], config, part)
            changes = await rfm_repository.apply_changes(conns[i], config, now, trace, part)
            return {"profiles": scored, **changes}

        try:
            async with asyncio.TaskGroup() as group:  # one lane failing stops the others
                tasks = [group.create_task(lane(i)) for i in range(lanes)]
        except ExceptionGroup as failed:  # the first lane's failure, as one lane would raise it
            raise failed.exceptions[0] from failed
    totals = {key: sum(t.result()[key] for t in tasks) for key in ("profiles", "entered", "exited")}
    return {**totals, "ms": round((time.perf_counter() - started) * 1000)}
