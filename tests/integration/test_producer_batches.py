"""The producer appends records to partition batches itself: every record must land on the
partition aiokafka's own `send` picks for its key (so our records and anyone else's for one
customer share a partition), in order, with its headers, also when a batch fills up."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import OutRecord, Producer
from shared.settings import Settings

pytestmark = pytest.mark.integration
TOPIC = "jm.segment-changes"  # six partitions, nobody else writes to it in this test


async def _read_all(
    settings: Settings, count: int
) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]] = []
        while len(out) < count:
            batches = await consumer.getmany(timeout_ms=1_000)
            assert batches, f"only {len(out)} of {count} records arrived"
            for tp, msgs in batches.items():
                out += [(tp.partition, m.key or b"", m.value or b"", list(m.headers)) for m in msgs]
        return out
    finally:
        await consumer.stop()


async def test_batches_go_where_send_would_in_order(settings: Settings) -> None:
    run = uuid.uuid4().hex[:6]
    keys = [f"user:{run}-{i}".encode() for i in range(40)]
    big = b"x" * 100_000  # a few of these fill a 256 KB batch
    records = [
        OutRecord(TOPIC, big if n % 7 == 0 else f"{n}".encode(), keys[n % 40],
                  [("ce_id", f"{run}-{n}".encode())])
        for n in range(400)
    ]  # fmt: skip
    producer = Producer(settings)
    await producer.start()
    try:
        await producer.send_batch(records)
    finally:
        await producer.stop()

    reference = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False
    )
    await reference.start()
    try:
        expected = {
            key: (await (await reference.send(TOPIC, b"probe", key=key))).partition for key in keys
        }
    finally:
        await reference.stop()

    received = [r for r in await _read_all(settings, 400 + len(keys)) if r[2] != b"probe"]
    assert len(received) == 400
    for partition, key, _, _ in received:
        assert partition == expected[key]
    by_key: dict[bytes, list[int]] = {}
    for _, key, value, headers in received:
        (ce_id,) = [v for k, v in headers if k == "ce_id"]
        n = int(ce_id.decode().rsplit("-", 1)[1])
        assert value == (big if n % 7 == 0 else f"{n}".encode())
        by_key.setdefault(key, []).append(n)
    for numbers in by_key.values():
        assert numbers == sorted(numbers), "a customer's records were reordered"
