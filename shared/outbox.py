"""Transactional outbox: a service writes the records it wants published into its own schema in
the same transaction as its state change; the relay publishes them afterwards. No event is lost
when the broker is away, and none is emitted for a change that rolled back.

Two paths, one guarantee. The fast path: when a transaction that wrote outbox rows commits, the
relay of this process gets the records it already has in memory. When the writer says its
commit returned (`wake(conn)`, which `OutboxRelay.transaction` does for it), they are
published at once and their rows deleted afterwards, off the records' path; a crash in between
publishes them again (consumers are idempotent), never loses them. Otherwise the relay
publishes those whose rows it can delete (`DELETE ... RETURNING`: a row that did not commit
cannot be deleted, so nothing of a rolled-back change leaves), in the transaction that waits
for the broker's acknowledgement, so a failed publish leaves them in place. The recovery path:
rows older than a grace period (a crashed process, a broker outage) are read in id order with
`FOR UPDATE SKIP LOCKED` and published; any number of replicas can run it side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.cloudevents import Headers
from shared.db import any_of, driver_connection, fetch_first
from shared.errors import is_transient
from shared.kafka import OutRecord, Producer
from shared.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)
COPY_FROM_ROWS = 200  # larger batches go in with binary COPY, smaller ones in one INSERT
# How long the relay waits for a writer to confirm its COMMIT returned before it looks at the
# rows instead. Without it, a pass that found the next commit's records staged (its hook ran,
# its COMMIT was on the wire) took the slower path at once: 185 passes of the journey's
# latency phase, measured. A writer that never confirms (an ops path) waits this long.
CONFIRMATION_WAIT_S = 0.05
# Seconds since the transaction began, which is the rows' `created_at` (`now()`): how close
# they are to the recovery path's grace period, measured on the server's clock.
_SINCE_CREATED = "extract(epoch FROM clock_timestamp() - now())"
_RELAYS: dict[str, OutboxRelay] = {}


def outbox_table(metadata: MetaData) -> Table:
    """The outbox of the service whose metadata (and schema) this is."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", String, nullable=False),
        Column("key", LargeBinary),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=False),  # read whole, on the recovery path only
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def add_to_outbox(conn: AsyncConnection, table: Table, records: Sequence[OutRecord]) -> None:
    """Queue records for publication inside the caller's transaction.

    On the asyncpg connection under the caller's. A large batch: ids are drawn from the
    table's identity sequence in one statement, then the rows go in with binary COPY,
    PostgreSQL's cheapest bulk path (measured ~35% less than an `INSERT .. SELECT FROM
    unnest(..) RETURNING id`, which itself was ~1.8x cheaper than SQLAlchemy's executemany).
    A small one (a consumer that has caught up): that INSERT, one round trip instead of three."""
    if not records:
        return
    driver = await driver_connection(conn)
    write = _insert_returning_ids if len(records) <= COPY_FROM_ROWS else _copy_returning_ids
    ids, age_s = await write(driver, table, records)
    relay = _RELAYS.get(table.fullname)
    if relay is not None:
        staged = [(id_, _trimmed(r)) for id_, r in zip(ids, records, strict=True)]
        began = time.monotonic() - age_s  # when the rows' created_at was taken
        # A weak reference: the listener lives on the connection, so holding the connection
        # itself would make a cycle, and every transaction's connection would wait for the
        # cyclic collector (a 0.65 s pause of the event loop, measured, once they piled up).
        writer = weakref.ref(conn)
        event.listen(
            conn.sync_connection,
            "commit",
            lambda _: relay.committed(writer, began, staged),
            once=True,
        )


async def _insert_returning_ids(
    driver: asyncpg.Connection, table: Table, records: Sequence[OutRecord]
) -> tuple[list[int], float]:
    """A few rows in one statement: COPY costs three round trips (the ids, then COPY's two),
    which on a small batch weigh more than the cheaper server work COPY buys. The identity
    is drawn row by row in the array's order, so the ids, sorted, follow the records.
    Returns the ids and the transaction's age in seconds (see `_SINCE_CREATED`)."""
    rows = await driver.fetch(
        f"INSERT INTO {table.fullname} (topic, key, value, headers)"  # noqa: S608
        " SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::json[])"
        f" RETURNING id, {_SINCE_CREATED}",
        [r.topic for r in records],
        [r.key for r in records],
        [r.value for r in records],
        [headers_json(r.headers) for r in records],
    )
    return sorted(row[0] for row in rows), float(rows[0][1])


async def _copy_returning_ids(
    driver: asyncpg.Connection, table: Table, records: Sequence[OutRecord]
) -> tuple[list[int], float]:
    """Many rows: their ids drawn in one statement, then binary COPY."""
    drawn = await driver.fetchrow(
        f"SELECT array_agg(nextval({_sequence_of(table)!r}::regclass)), "  # noqa: S608
        f"{_SINCE_CREATED} FROM generate_series(1, $1)",
        len(records),
    )
    ids: list[int] = sorted(drawn[0])
    await driver.copy_records_to_table(
        table.name,
        schema_name=table.schema,
        columns=("id", "topic", "key", "value", "headers"),
        records=[
            (id_, r.topic, r.key, r.value, headers_json(r.headers))
            for id_, r in zip(ids, records, strict=True)
        ],
    )
    return ids, float(drawn[1])


def _trimmed(record: OutRecord) -> OutRecord:
    """The record with its value copied to its own size. orjson (3.12 on) returns its whole
    working buffer, at least 4 KB, whatever the output's length; a relay that falls behind
    holds its records for seconds, and at 4 KB each a backlog of 100,000 dispatches of ~600
    bytes held 400 MB (measured: RSS grew ~2 KB a timer fired over a 1M drain)."""
    return OutRecord(record.topic, bytes(memoryview(record.value)), record.key, record.headers)


def _sequence_of(table: Table) -> str:
    """The identity sequence PostgreSQL names for the outbox's id column."""
    return f"{table.schema}.{table.name}_id_seq" if table.schema else f"{table.name}_id_seq"


def headers_json(headers: Headers) -> str:
    """Record headers as the outbox stores them (JSON text of [name, value] pairs)."""
    return orjson.dumps([(k, v.decode("utf-8", "replace")) for k, v in headers]).decode()


@dataclass(slots=True)
class _Commit:
    """A transaction whose records were staged; `returned` once its writer saw the COMMIT
    succeed (the hook that stages them runs before the COMMIT is sent)."""

    writer: weakref.ref[AsyncConnection]
    key: int  # id() of the connection, its key in the relay's commits awaiting confirmation
    began: float  # monotonic time of its rows' created_at
    staged_at: float  # monotonic time its COMMIT was about to be sent
    returned: bool = False


@dataclass(slots=True)
class _Staged:
    id: int
    record: OutRecord
    commit: _Commit


class _Gap(Exception):
    """Rows of a later commit are visible before those of an earlier one."""

    def __init__(self, visible: set[int]) -> None:
        super().__init__("outbox rows visible out of order")
        self.visible = visible


class OutboxRelay:
    """Publishes outbox rows, deleting them once the broker acknowledged them."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        producer: Producer,
        *,
        poll_interval_s: float = 0.2,
        batch_size: int = 10_000,
        grace_s: float = 2.0,
    ) -> None:
        self._engine = engine
        self._table = table
        self._producer = producer
        self._poll = poll_interval_s
        self._batch = batch_size
        self._grace = timedelta(seconds=grace_s)
        self._fresh: list[_Staged] = []
        self._awaiting: dict[int, _Commit] = {}  # by id() of the connection, until it returns
        self._published: list[int] = []  # ids published whose rows are still to be deleted
        self._deleting: asyncio.Task[None] | None = None
        # Deletes the rows of these ids that are committed: the ids it returns are those this
        # pass may publish, in one round trip. No join, so no plan can rescan the table per id:
        # an outbox is a queue, its statistics say it is nearly empty while its pages hold
        # thousands of rows deleted but not yet vacuumed, and the earlier form (`id IN (SELECT
        # .. FOR UPDATE SKIP LOCKED)`) was planned as a join that walked them for every id
        # (7,374 pages a pass, up to 43 s a call, in the benchmarks). A row held by another
        # relay's recovery pass is waited for, and is then gone: that relay published it.
        self._delete_visible = (
            f"DELETE FROM {table.fullname} WHERE id = ANY($1::bigint[]) RETURNING id"  # noqa: S608
        )
        self._delete_published = f"DELETE FROM {table.fullname} WHERE id = ANY($1::bigint[])"  # noqa: S608
        self._missing_since: float | None = None  # when the fast path last found nothing
        self._recovered_at = 0.0  # when the recovery path last looked (monotonic)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.problem: str | None = None
        _RELAYS[table.fullname] = self

    def committed(
        self,
        writer: weakref.ref[AsyncConnection],
        began: float,
        staged: list[tuple[int, OutRecord]],
    ) -> None:
        """Records of a transaction that is committing; published by the fast path once its
        caller, the commit returned, wakes the relay (or at the next poll). Waking here, before
        the COMMIT reached the server, sent the relay to look for rows not visible yet: a
        wasted transaction per commit, and a retry 5 ms later."""
        key = id(writer())
        commit = self._awaiting.get(key)
        if commit is None or commit.writer() is not writer():
            commit = self._awaiting[key] = _Commit(writer, key, began, time.monotonic())
        self._fresh.extend(_Staged(id_, record, commit) for id_, record in staged)

    @contextlib.asynccontextmanager
    async def transaction(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        """`engine.begin()` whose outbox records leave as soon as its COMMIT returned: the
        relay is woken with the connection then (and only if the transaction staged any)."""
        async with engine.begin() as conn:
            yield conn
        if id(conn) in self._awaiting:
            self.wake(conn)

    def wake(self, committed: AsyncConnection | None = None) -> None:
        """Look for work now rather than at the next poll. `committed`: the connection of a
        transaction whose COMMIT just returned; its records leave without a look at their rows
        (a wake with no connection, or none at all, leaves them to that look)."""
        if committed is not None:
            commit = self._awaiting.pop(id(committed), None)
            if commit is not None and commit.writer() is committed:
                commit.returned = True
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self._table.schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._deleted()
        if _RELAYS.get(self._table.fullname) is self:
            del _RELAYS[self._table.fullname]

    async def publish_fresh(self) -> int:
        """Fast path: publish the committed records this process wrote, in order.

        Records whose writer saw its COMMIT return leave at once, their rows deleted behind
        them. For the others the commit hook may have run a moment before the commit is
        visible, or for a commit that failed: they leave only as a prefix of what is visible,
        so a customer's records are never reordered; a row still missing after the grace
        period belonged to a commit that failed (or is left to the recovery path).
        """
        staged = self._fresh[: self._batch]
        if not staged:
            return 0
        # Only rows well inside the grace period: older ones another replica's recovery path
        # may be taking right now, and the delete-what-is-visible path is what keeps a
        # record from leaving twice then (a long transaction, a relay far behind its writers).
        now = time.monotonic()
        young = now - self._grace.total_seconds() / 2
        ready = list(
            itertools.takewhile(
                lambda item: item.commit.returned and item.commit.began > young, staged
            )
        )
        head = staged[0].commit
        if ready:
            await self._producer.send_batch([item.record for item in ready])
            self._forget([item.id for item in ready])
        elif not head.returned and now - head.staged_at < CONFIRMATION_WAIT_S:
            return 0  # its writer is about to say its COMMIT returned: wait for that wake
        else:
            ready = await self._publish_visible(staged)
        if not ready:
            return 0
        self._missing_since = None
        self._drop(len(ready))
        OUTBOX_PUBLISHED.labels(self._table.schema).inc(len(ready))
        return len(ready)

    def _drop(self, count: int) -> None:
        """Forget the first `count` staged records, and their commits no writer confirmed."""
        for item in self._fresh[:count]:
            if self._awaiting.get(item.commit.key) is item.commit:
                del self._awaiting[item.commit.key]
        del self._fresh[:count]

    async def _publish_visible(self, staged: list[_Staged]) -> list[_Staged]:
        """The staged records whose rows are committed, as a prefix: deleted, published."""
        try:
            async with self._engine.begin() as conn:
                rows = await fetch_first(conn, self._delete_visible, [s.id for s in staged])
                visible = {row[0] for row in rows}
                ready = list(itertools.takewhile(lambda item: item.id in visible, staged))
                if len(ready) < len(visible):
                    raise _Gap(visible)  # roll the deletion back: nothing may leave out of order
                await self._producer.send_batch([item.record for item in ready])
        except _Gap as gap:
            visible, ready = gap.visible, []
        if not ready:
            # A commit can take a while to become visible (a large batch's WAL, a checkpoint):
            # its records wait here until the recovery path would take their rows anyway.
            # Giving up after a fixed number of 5 ms passes sent slow commits the slow way.
            now = time.monotonic()
            if self._missing_since is None:
                self._missing_since = now
            elif now - self._missing_since > self._grace.total_seconds():
                gone = list(itertools.takewhile(lambda item: item.id not in visible, staged))
                self._drop(len(gone))
                self._missing_since = None
        return ready

    def _forget(self, ids: list[int]) -> None:
        """Delete the rows of published records, in the background: the next records need
        not wait for it. Should it fail, the rows stay and the recovery path publishes them
        again later (a duplicate, never a loss)."""
        self._published.extend(ids)
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.create_task(self._delete_forgotten())

    async def _delete_forgotten(self) -> None:
        while self._published:
            ids, self._published = self._published, []
            try:
                async with self._engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.exec_driver_sql(self._delete_published, (ids,))
            except Exception as exc:
                log.warning("published outbox rows not deleted", extra={"error": repr(exc)})

    async def _deleted(self) -> None:
        """Wait for the rows of published records to be deleted."""
        if self._deleting is not None:
            await self._deleting
            self._deleting = None

    async def publish_pending(self, older_than: timedelta | None = None) -> int:
        """Recovery path: rows left behind (by a crash or an outage), oldest first."""
        t = self._table
        age = self._grace if older_than is None else older_than
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.value, t.c.headers)
                    .where(t.c.created_at < func.now() - age)
                    .order_by(t.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            OUTBOX_PENDING.labels(t.schema).set(len(rows))
            if not rows:
                return 0
            await self._producer.send_batch([_record(row) for row in rows])
            await conn.execute(delete(t).where(any_of(t.c.id, [row.id for row in rows])))
        OUTBOX_PUBLISHED.labels(t.schema).inc(len(rows))
        return len(rows)

    def _recovery_due(self) -> bool:
        """The recovery path looks once a grace period (or poll interval, the longer), not
        after every fast-path pass: it only takes rows older than the grace period, so looking
        more often finds nothing sooner. Each look scans the outbox from its oldest id, past
        the index entries of every row published and not yet vacuumed: during a 1M timer
        drain, looks once a poll interval took 59 ms each, ~8 s of a replica's 56 s (probe).
        A crashed process's rows leave within two grace periods."""
        now = time.monotonic()
        if now - self._recovered_at < max(self._poll, self._grace.total_seconds()):
            return False
        self._recovered_at = now
        return True

    async def _run(self) -> None:
        delay = self._poll
        while True:
            self._wake.clear()  # a wake from here on (a commit that completed) is not lost
            try:
                published = await self.publish_fresh()
                if not self._fresh and self._recovery_due():
                    await self._deleted()  # or it would publish rows it published already
                    pending = await self.publish_pending()
                    if pending >= self._batch:
                        self._recovered_at = 0.0  # a backlog (an outage's): keep draining it
                    published += pending
                self.problem = None
                delay = self._poll
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("outbox relay failed")
                self.problem = f"{type(exc).__name__}: {exc}"
                self._drop(len(self._fresh))  # their rows stay; the recovery path publishes them
                published = 0
                delay = min(delay * 2, 10.0)
            if published >= self._batch or (self._fresh and published):
                continue
            # Records of a commit on its way to becoming visible (the hook runs before the
            # COMMIT reaches the server): try again when its caller wakes us once the commit
            # returned, or after 5 ms.
            wait = 0.005 if self._fresh else delay
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)


def _record(row: Any) -> OutRecord:
    return OutRecord(row.topic, row.value, row.key, [(k, v.encode()) for k, v in row.headers])
