"""The batch consumer commits each batch's offsets in the background, while it handles the
next batch: the commits still land, in order, up to the last record handled, so a restart of
its group does not hand those records over again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.consumer import BatchConsumer, Record, Rejected
from shared.kafka import Producer
from shared.settings import Settings
from shared.topics import EVENTS
from tests.helpers import consume, produce, total_records

pytestmark = pytest.mark.integration


async def _committed(settings: Settings, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offset, end offset) by partition of `EVENTS`, for `group`."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group,
        enable_auto_commit=False,
    )  # fmt: skip
    await reader.start()
    try:
        tps = [TopicPartition(EVENTS, p) for p in sorted(reader.partitions_for_topic(EVENTS) or ())]
        ends = await reader.end_offsets(tps)
        committed = {tp.partition: await reader.committed(tp) or 0 for tp in tps}
        return committed, {tp.partition: end for tp, end in ends.items()}
    finally:
        await reader.stop()


async def test_background_commits_reach_the_last_record(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    await produce(settings, EVENTS, [f'{{"n": {i}}}'.encode() for i in range(50)], key=run.encode())
    backlog = await total_records(settings, EVENTS)
    seen: list[tuple[int, int]] = []

    async def handler(records: Sequence[Record]) -> Sequence[Rejected]:
        seen.extend((r.partition, r.offset) for r in records)
        return []

    producer = Producer(settings)
    await producer.start()
    group = f"offsets-{run}"
    consumer = BatchConsumer(
        settings, topics=[EVENTS], group=group, handler=handler, producer=producer
    )
    try:
        await consume(consumer, backlog, "the consumer to handle the topic")
    finally:
        await producer.stop()
    assert len(seen) == len(set(seen)) >= backlog  # each record handed over once
    committed, ends = await _committed(settings, group)
    assert committed == ends
