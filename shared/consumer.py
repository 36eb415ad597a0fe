"""The batch consumer every service runs.

At-least-once by construction: a batch is handed to the handler, which applies it in one database
transaction and returns the records it rejected; rejected records go to `jm.dead-letter` with the
reason, source and original bytes; only then are offsets committed. A failure of the whole batch
is either transient (database or broker away: wait and retry the same records) or caused by some
record in it (retry one by one, so the bad record is isolated and the rest still land).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from shared.cloudevents import header_map
from shared.errors import is_transient
from shared.kafka import OutRecord, Producer, security_options
from shared.metrics import BATCH_RETRIES, BATCH_SECONDS, RECORDS_CONSUMED, RECORDS_DEAD_LETTERED
from shared.settings import Settings
from shared.topics import DEAD_LETTER

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """A consumed record, detached from aiokafka: handlers and domain code never see the client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    raw_headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @classmethod
    def from_kafka(cls, msg: ConsumerRecord[bytes, bytes]) -> Record:
        raw = tuple(msg.headers or ())
        return cls(
            msg.topic, msg.partition, msg.offset, msg.key, msg.value, header_map(raw), raw,
            msg.timestamp,
        )  # fmt: skip


@dataclass(frozen=True)
class Rejected:
    """A record that can never be processed, and why, in words an operator understands."""

    record: Record
    reason: str


BatchHandler = Callable[[Sequence[Record]], Awaitable[Sequence[Rejected]]]
LANE_MIN_RECORDS = 200  # smaller batches stay whole: one transaction, the lowest latency


def lanes_of(records: Sequence[Record], lanes: int) -> list[list[Record]]:
    """The batch split by record key into at most `lanes` groups, each in batch order: a
    customer's records share a key, so each group holds whole customers, in their order (a
    fetch often holds a few partitions only, so keys balance the groups where partitions
    would not). Small batches stay whole."""
    if lanes <= 1 or len(records) < LANE_MIN_RECORDS:
        return [list(records)]
    groups: list[list[Record]] = [[] for _ in range(lanes)]
    for record in records:
        groups[zlib.crc32(record.key or b"") % lanes].append(record)
    return [g for g in groups if g]


def dead_letter_record(rejected: Rejected, group: str) -> OutRecord:
    """The original bytes and headers, plus where they came from and why they failed."""
    rec = rejected.record
    headers = [
        *rec.raw_headers,
        ("dlq_reason", rejected.reason[:4000].encode()),
        ("dlq_source_topic", rec.topic.encode()),
        ("dlq_source_partition", str(rec.partition).encode()),
        ("dlq_source_offset", str(rec.offset).encode()),
        ("dlq_consumer_group", group.encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    return OutRecord(DEAD_LETTER, rec.value or b"", rec.key, headers)


class BatchConsumer:
    """Runs `handler` over batches of `topics` in consumer group `group` until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Sequence[str],
        group: str,
        handler: BatchHandler,
        producer: Producer,
        max_backoff_s: float = 10.0,
        lanes: int = 1,
    ) -> None:
        """`lanes` > 1: a large batch is handled as that many groups of customers at once,
        each in its own transaction, so one group's database round trips overlap the others'
        Python work. Only for handlers whose work on different customers touches no shared
        row; offsets are committed once every group is done."""
        self._settings = settings
        self._lanes = lanes
        self._topics = list(topics)
        self.group = group
        self._handler = handler
        self._producer = producer
        self._max_backoff = max_backoff_s
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group,
            client_id=f"{settings.service_name}-{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 4, 100),
            max_poll_records=settings.kafka_max_batch,
            fetch_max_wait_ms=settings.kafka_poll_timeout_ms,
            **security_options(settings),
        )
        self._task: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None
        self.problem: str | None = "starting"
        self.processed = 0

    async def start(self) -> None:
        await self._consumer.start()
        self.problem = None
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer holds now (the group shares them among replicas)."""
        return set(self._consumer.assignment())

    def partition_count(self) -> int:
        """The partitions of this consumer's topics, as the broker's metadata has them (0
        until it has been read): what the group shares among its members."""
        return sum(len(self._consumer.partitions_for_topic(t) or ()) for t in self._topics)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._committed()  # the last batch's offsets, if they are on their way
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(
                timeout_ms=self._settings.kafka_poll_timeout_ms,
                max_records=self._settings.kafka_max_batch,
            )
            if not batches:
                continue
            started = time.perf_counter()
            records = [Record.from_kafka(m) for msgs in batches.values() for m in msgs]
            groups = lanes_of(records, self._lanes)
            rejected = [
                r for found in await asyncio.gather(*map(self._handle, groups)) for r in found
            ]
            await self._with_retry(partial(self._dead_letter, rejected))
            await self._committed()
            offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
            self._committing = asyncio.create_task(self._commit(offsets))
            self.processed += len(records)
            for tp, msgs in batches.items():
                RECORDS_CONSUMED.labels(self.group, tp.topic).inc(len(msgs))
            BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - started)

    async def _handle(self, records: Sequence[Record]) -> list[Rejected]:
        try:
            return list(await self._with_retry(partial(self._handler, records)))
        except Exception as exc:
            if len(records) == 1:
                log.warning(
                    "record rejected",
                    extra={"topic": records[0].topic, "partition": records[0].partition,
                           "offset": records[0].offset, "error": repr(exc)},
                )  # fmt: skip
                return [Rejected(records[0], f"{type(exc).__name__}: {exc}")]
            log.warning("batch failed, isolating the bad record", extra={"error": repr(exc)})
        rejected: list[Rejected] = []
        for record in records:
            rejected.extend(await self._handle([record]))
        return rejected

    async def _with_retry(self, work: Callable[[], Awaitable[T]]) -> T:
        """Retry transient failures with capped exponential backoff; the rest propagate."""
        delay = 0.2
        while True:
            try:
                result = await work()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.problem = f"{type(exc).__name__}: {exc}"
                BATCH_RETRIES.labels(self.group).inc()
                log.warning(
                    "transient failure, retrying in %.1fs", delay, extra={"error": repr(exc)}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
            else:
                self.problem = None
                return result

    async def _dead_letter(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        await self._producer.send_batch([dead_letter_record(r, self.group) for r in rejected])
        for r in rejected:
            RECORDS_DEAD_LETTERED.labels(self.group, r.record.topic).inc()

    async def _committed(self) -> None:
        """Wait for the previous batch's offset commit. It runs while the next batch is
        fetched and handled: a round trip to the broker (2.5 ms a batch in the journey's
        latency phase, measured) off each batch's path. Commits stay in order, one at a
        time; a batch whose commit never happened (a crash) is redelivered, as before."""
        if self._committing is not None:
            await self._committing
            self._committing = None

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced while we worked; the new owner gets these records again,
            # which every handler tolerates (idempotent by messageId / dispatch id).
            log.warning("commit refused after a rebalance", extra={"error": repr(exc)})
        except KafkaError as exc:
            log.warning("commit failed", extra={"error": repr(exc)})
