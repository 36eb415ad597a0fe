"""Transactional outbox: a service writes the records it wants published into its own schema in
the same transaction as its state change; the relay publishes them afterwards. No event is lost
when the broker is away, and none is emitted for a change that rolled back.

One relay publishes per schema at a time (a transaction-scoped advisory lock), so records leave
in the order they were written, whatever the number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.errors import is_transient
from shared.kafka import OutRecord, Producer
from shared.metrics import OUTBOX_PENDING, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox of the service whose metadata (and schema) this is."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("topic", String, nullable=False),
        Column("key", LargeBinary),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def add_to_outbox(conn: AsyncConnection, table: Table, records: Sequence[OutRecord]) -> None:
    """Queue records for publication inside the caller's transaction."""
    if not records:
        return
    rows = [
        {
            "topic": r.topic,
            "key": r.key,
            "value": r.value,
            "headers": [[k, v.decode("utf-8", "replace")] for k, v in r.headers],
        }
        for r in records
    ]
    await conn.execute(insert(table), rows)


class OutboxRelay:
    """Publishes outbox rows in id order, deleting them once the broker acknowledged them."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        producer: Producer,
        poll_interval_s: float = 0.2,
        batch_size: int = 2_000,
    ) -> None:
        self._engine = engine
        self._table = table
        self._producer = producer
        self._poll = poll_interval_s
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_id = zlib.crc32(f"outbox:{table.schema}".encode())
        self.problem: str | None = None

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so they leave without waiting a poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self._table.schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish_pending(self) -> int:
        """One pass: publish up to a batch of rows; returns how many left the outbox."""
        async with self._engine.begin() as conn:
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": self._lock_id}
            )
            if not locked:
                return 0
            t = self._table
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.value, t.c.headers)
                    .order_by(t.c.id)
                    .limit(self._batch)
                )
            ).all()
            OUTBOX_PENDING.labels(t.schema).set(len(rows))
            if not rows:
                return 0
            await self._producer.send_batch(
                [
                    OutRecord(
                        row.topic, row.value, row.key, [(k, v.encode()) for k, v in row.headers]
                    )
                    for row in rows
                ]
            )
            await conn.execute(delete(t).where(t.c.id.in_([row.id for row in rows])))
        OUTBOX_PUBLISHED.labels(t.schema).inc(len(rows))
        return len(rows)

    async def _run(self) -> None:
        delay = self._poll
        while True:
            try:
                published = await self.publish_pending()
                self.problem = None
                delay = self._poll
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("outbox relay failed")
                self.problem = f"{type(exc).__name__}: {exc}"
                published = 0
                delay = min(delay * 2, 10.0)
            if published >= self._batch:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
