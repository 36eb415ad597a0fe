"""The timer worker's guarantees on the real database, at the level of one batch: a claim holds
its timers and instances until the transaction ends, a crash between claim and commit loses
nothing and sends nothing, two workers draining side by side fire each timer once, timers of a
paused journey stay put, and lateness is measured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from journeyman.bench.common import asyncpg_dsn
from journeyman.bench.journey import TIMER_JOURNEY, seed_waiting
from services.journey.engine import Engine
from services.journey.firing import Fired, fire_due
from services.journey.loader import load_journeys
from services.journey.models import outbox
from services.journey.registry import Registry
from shared.db import create_engine
from shared.outbox import add_to_outbox
from shared.settings import Settings

pytestmark = pytest.mark.integration
JOURNEY = "bench-timers"


class Crash(Exception):
    """The process dies after the claim, before the commit."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=database_url, service_name="test"))
    yield engine
    await engine.dispose()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    (tmp_path / f"{JOURNEY}.yaml").write_text(TIMER_JOURNEY)
    journeys, errors = load_journeys(tmp_path)
    assert not errors
    found = Registry()
    found.add(journeys[0])
    return found


async def _seed(database_url: str, prefix: str, count: int, ago: timedelta) -> datetime:
    due = datetime.now(UTC) - ago
    await seed_waiting(asyncpg_dsn(database_url), prefix, count, due, 0)
    return due


async def _fire(db: AsyncEngine, registry: Registry, limit: int = 100) -> Fired:
    """What the worker does in one pass: claim, fire, queue the records, commit."""
    async with db.begin() as conn:
        fired = await fire_due(conn, registry, Engine(), datetime.now(UTC), limit)
        await add_to_outbox(conn, outbox, fired.records)
    return fired


async def _state(database_url: str) -> tuple[dict[str, str], int, list[str]]:
    """Instance statuses, timers left, dispatch ids in the outbox."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        statuses = dict(await conn.fetch("SELECT instance_id, status FROM journey.instances"))
        left = await conn.fetchval("SELECT count(*) FROM journey.timers")
        values = await conn.fetch("SELECT value FROM journey.outbox WHERE topic = 'jm.dispatch'")
    finally:
        await conn.close()
    return statuses, left, [orjson.loads(v["value"])["dispatch_id"] for v in values]


async def test_a_claim_holds_until_commit_and_a_crash_loses_nothing(
    database_url: str, db: AsyncEngine, registry: Registry
) -> None:
    await _seed(database_url, "c", 5, timedelta(minutes=5))

    async def crashing() -> None:
        async with db.begin() as conn:
            first = await fire_due(conn, registry, Engine(), datetime.now(UTC), 100)
            await add_to_outbox(conn, outbox, first.records)
            assert first.fired == 5
            # While the first worker's transaction is open, a second one finds nothing to do.
            assert (await _fire(db, registry)).claimed == 0
            raise Crash

    with pytest.raises(Crash):
        await crashing()
    statuses, left, sent = await _state(database_url)
    assert set(statuses.values()) == {"active"}  # the crash rolled every change back
    assert left == 5
    assert sent == []
    again = await _fire(db, registry)
    assert again.fired == 5
    statuses, left, sent = await _state(database_url)
    assert set(statuses.values()) == {"completed"}
    assert left == 0
    assert sorted(sent) == sorted(f"c-{i}:ping" for i in range(5))
    assert (await _fire(db, registry)).claimed == 0  # nothing fires twice


async def test_two_workers_side_by_side_fire_each_timer_once(
    database_url: str, db: AsyncEngine, registry: Registry
) -> None:
    count = 600
    await _seed(database_url, "w", count, timedelta(minutes=1))

    async def worker() -> int:
        fired = 0
        while (batch := await _fire(db, registry, limit=50)).claimed:
            fired += batch.fired
        return fired

    counts = await asyncio.gather(worker(), worker())
    assert sum(counts) == count
    assert all(counts)  # both took part
    statuses, left, sent = await _state(database_url)
    assert left == 0
    assert set(statuses.values()) == {"completed"}
    assert sorted(sent) == sorted(f"w-{i}:ping" for i in range(count))


async def test_paused_journeys_keep_their_timers_and_lateness_is_measured(
    database_url: str, db: AsyncEngine, registry: Registry
) -> None:
    await _seed(database_url, "p", 3, timedelta(seconds=90))
    registry.set_status(JOURNEY, "paused")
    assert (await _fire(db, registry)).claimed == 0
    statuses, left, sent = await _state(database_url)
    assert (set(statuses.values()), left, sent) == ({"active"}, 3, [])
    registry.set_status(JOURNEY, "active")
    fired = await _fire(db, registry)
    assert fired.fired == 3
    assert len(fired.lateness_s) == 3
    assert all(90 <= late < 90 + 60 for late in fired.lateness_s)


async def test_the_benchmarks_seed_their_timers_a_fraction_of_a_millisecond_apart(
    database_url: str,
) -> None:
    """The lateness phases seed thousands of timers over a few seconds, so less than a
    millisecond apart: a step the database took as an integer (truncated to 0) made them one
    burst, all due at once (found in stop 28; every lateness figure before it was a burst)."""
    first = datetime.now(UTC) + timedelta(hours=1)
    await seed_waiting(asyncpg_dsn(database_url), "s", 5, first, 0.25)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        due = await conn.fetch(
            "SELECT due_at FROM journey.timers WHERE timer_id LIKE 's-%' ORDER BY due_at"
        )
    finally:
        await conn.close()
    assert [row["due_at"] - first for row in due] == [
        timedelta(microseconds=250 * i) for i in range(5)
    ]
