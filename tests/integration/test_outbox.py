"""The outbox on the real database and broker: committed records leave once and in order, a
rolled-back transaction or a failed COMMIT emits nothing, and rows left behind are published
by recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select, text

from services.profile.models import outbox
from shared.db import create_engine
from shared.kafka import OutRecord
from shared.outbox import COPY_FROM_ROWS, OutboxRelay, add_to_outbox
from shared.runtime import Runtime
from shared.settings import Settings
from tests.helpers import TopicReader

pytestmark = pytest.mark.integration
TOPIC = "jm.segment-changes"  # any topic of ours nobody else writes to in this test
SIZES = (50, COPY_FROM_ROWS + 50, 3)  # small batches go in with an INSERT, large ones with COPY


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(settings)
    await rt.producer.start()
    try:
        yield rt
    finally:
        await rt.producer.stop()
        await rt.engine.dispose()


def _records(run: str, n: int) -> list[OutRecord]:
    return [OutRecord(TOPIC, f"{run}-{i}".encode(), b"same-key") for i in range(n)]


async def _failing_transaction(rt: Runtime, records: list[OutRecord]) -> None:
    async with rt.engine.begin() as conn:
        await add_to_outbox(conn, outbox, records)
        raise RuntimeError("the state change failed")


async def _refused_commit(rt: Runtime, records: list[OutRecord]) -> None:
    """A transaction whose COMMIT fails: a deferred unique constraint is checked there."""
    async with rt.engine.begin() as conn:
        await conn.execute(
            text("CREATE TEMP TABLE once (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"
                 " ON COMMIT DROP")
        )  # fmt: skip
        await conn.execute(text("INSERT INTO once VALUES (1), (1)"))
        await add_to_outbox(conn, outbox, records)


async def _rows(rt: Runtime) -> int:
    async with rt.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox)) or 0)


async def test_committed_once_in_order_and_rollback_emits_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    relay = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.5)
    await relay.start()
    run = uuid.uuid4().hex[:6]
    try:
        async with TopicReader(settings, TOPIC) as reader:
            for chunk, size in enumerate(SIZES):
                async with runtime.engine.begin() as conn:
                    await add_to_outbox(conn, outbox, _records(f"{run}-{chunk}", size))
                if chunk != 1:  # its writer saw the commit return; chunk 1's rows are looked at
                    relay.wake(conn)
            with pytest.raises(RuntimeError, match="state change failed"):
                await _failing_transaction(runtime, _records(f"{run}-rolled-back", 5))
            got = await reader.read(sum(SIZES))
            more = await reader.read_for(1.5)  # nothing else arrives
        values = [r.value.decode() for r in [*got, *more]]  # type: ignore[attr-defined]
        assert values == [f"{run}-{c}-{i}" for c, size in enumerate(SIZES) for i in range(size)]
        assert await _rows(runtime) == 0
    finally:
        await relay.stop()


async def test_a_commit_that_failed_emits_nothing(runtime: Runtime, settings: Settings) -> None:
    """The records are staged when the COMMIT is sent; a COMMIT the server refuses (here a
    deferred constraint) must not let them out, even when a later commit returns at once."""
    relay = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.5)
    await relay.start()
    run = uuid.uuid4().hex[:6]
    try:
        async with TopicReader(settings, TOPIC) as reader:
            with pytest.raises(Exception, match="duplicate key"):
                await _refused_commit(runtime, _records(f"{run}-refused", 4))
            async with runtime.engine.begin() as conn:
                await add_to_outbox(conn, outbox, _records(f"{run}-kept", 3))
            relay.wake(conn)
            got = await reader.read(3)
            more = await reader.read_for(1.5)
        values = [r.value.decode() for r in [*got, *more]]  # type: ignore[attr-defined]
        assert values == [f"{run}-kept-{i}" for i in range(3)]
        assert await _rows(runtime) == 0
    finally:
        await relay.stop()


async def test_rows_another_replica_recovered_do_not_leave_twice(
    runtime: Runtime, settings: Settings
) -> None:
    """A transaction older than half the grace period when it commits (a long one, or a relay
    far behind): another replica's recovery path may take its rows before this relay gets to
    them, so its records leave only through the delete-what-is-visible path, even confirmed."""
    other_replica = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.4)
    relay = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.4)  # stages them
    run = uuid.uuid4().hex[:6]
    try:
        async with TopicReader(settings, TOPIC) as reader:
            async with runtime.engine.begin() as conn:
                await add_to_outbox(conn, outbox, _records(run, 5))
                await asyncio.sleep(0.5)
            relay.wake(conn)
            assert await other_replica.publish_pending() == 5
            assert await relay.publish_fresh() == 0
            got = await reader.read(5)
            more = await reader.read_for(1.5)
        assert [r.value.decode() for r in [*got, *more]] == [f"{run}-{i}" for i in range(5)]  # type: ignore[attr-defined]
        assert await _rows(runtime) == 0
    finally:
        await relay.stop()
        await other_replica.stop()


async def test_rows_left_behind_are_recovered(runtime: Runtime, settings: Settings) -> None:
    run = uuid.uuid4().hex[:6]
    # Rows written by a process that died before publishing (no relay of its own).
    other = create_engine(settings)
    async with other.begin() as conn:
        await conn.execute(
            insert(outbox),
            [{"topic": TOPIC, "key": b"k", "value": f"{run}-{i}".encode(), "headers": []}
             for i in range(20)],
        )  # fmt: skip
    await other.dispose()
    relay = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.0)
    async with TopicReader(settings, TOPIC) as reader:
        await relay.start()
        try:
            got = await reader.read(20)
        finally:
            await relay.stop()
    assert [r.value.decode() for r in got] == [f"{run}-{i}" for i in range(20)]  # type: ignore[attr-defined]
    assert await _rows(runtime) == 0


async def test_rows_of_either_write_path_are_recovered_with_their_headers(
    runtime: Runtime, settings: Settings
) -> None:
    """Rows written by `add_to_outbox` in a process with no relay (one that died before
    publishing): a small batch (INSERT) and a large one (COPY) come back whole, in order."""
    run = uuid.uuid4().hex[:6]
    sizes = (3, COPY_FROM_ROWS + 1)
    for chunk, size in enumerate(sizes):
        records = [OutRecord(TOPIC, f"{run}-{chunk}-{i}".encode(), b"k", [("n", str(i).encode())])
                   for i in range(size)]  # fmt: skip
        async with runtime.engine.begin() as conn:
            await add_to_outbox(conn, outbox, records)
    relay = OutboxRelay(runtime.engine, outbox, runtime.producer, grace_s=0.0)
    async with TopicReader(settings, TOPIC) as reader:
        await relay.start()
        try:
            got = await reader.read(sum(sizes))
        finally:
            await relay.stop()
    expected = [(f"{run}-{c}-{i}", str(i)) for c, size in enumerate(sizes) for i in range(size)]
    assert [(r.value.decode(), dict(r.headers)["n"].decode()) for r in got] == expected  # type: ignore[attr-defined]
    assert await _rows(runtime) == 0
