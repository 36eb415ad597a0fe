"""Inspecting and replaying the dead-letter topic (`journeyman dlq list|show|replay`).

Replay sends a record's original bytes, key and headers back to the topic it came from, once: a
consumer group remembers what was replayed. A record that fails again comes back to the
dead-letter topic with a new reason, so nothing is ever dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.kafka import OutRecord, Producer, security_options
from shared.settings import Settings
from shared.topics import DEAD_LETTER

REPLAY_GROUP = "journeyman-dlq-replay"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        return next((v.decode("utf-8", "replace") for k, v in self.headers if k == name), "")

    @property
    def reason(self) -> str:
        return self.header("dlq_reason")

    @property
    def source(self) -> str:
        return (
            f"{self.header('dlq_source_topic')}[{self.header('dlq_source_partition')}]"
            f"@{self.header('dlq_source_offset')}"
        )

    def original(self) -> OutRecord:
        """The record as it was before it failed."""
        headers = [(k, v) for k, v in self.headers if not k.startswith("dlq_")]
        return OutRecord(self.header("dlq_source_topic"), self.value, self.key, headers)

    @classmethod
    def of(cls, msg: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        return cls(msg.partition, msg.offset, msg.key, msg.value or b"", list(msg.headers or ()))


async def _read(consumer: AIOKafkaConsumer, limit: int | None) -> list[DeadLetter]:
    """Everything from the consumer's positions up to the end offsets seen at the start."""
    tps = list(consumer.assignment())
    ends = await consumer.end_offsets(tps)
    found: list[DeadLetter] = []
    while await _behind(consumer, ends):
        batches = await consumer.getmany(timeout_ms=500, max_records=1000)
        for msgs in batches.values():
            found.extend(
                DeadLetter.of(m)
                for m in msgs
                if m.offset < ends[TopicPartition(m.topic, m.partition)]
            )
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def list_dead_letters(settings: Settings, limit: int | None = None) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        **security_options(settings),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(DEAD_LETTER, p) for p in consumer.partitions_for_topic(DEAD_LETTER) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return await _read(consumer, limit)
    finally:
        await consumer.stop()


async def replay(settings: Settings, only_offset: int | None = None) -> list[DeadLetter]:
    """Send not-yet-replayed dead letters (or one, by offset) back to their source topics."""
    consumer = AIOKafkaConsumer(
        DEAD_LETTER,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        **security_options(settings),
    )
    producer = Producer(settings, client_id="journeyman-dlq-replay")
    await consumer.start()
    await producer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)  # join the group and get the partition
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        pending = await _read(consumer, None)
        chosen = [d for d in pending if only_offset is None or d.offset == only_offset]
        await producer.send_batch([d.original() for d in chosen])
        if only_offset is None and pending:
            last = max(pending, key=lambda d: d.offset)
            await consumer.commit({TopicPartition(DEAD_LETTER, last.partition): last.offset + 1})
        return chosen
    finally:
        await producer.stop()
        await consumer.stop()
