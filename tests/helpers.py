"""Helpers for tests that drive services in-process against the real broker and database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from shared.consumer import BatchConsumer
from shared.settings import Settings

T = TypeVar("T")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (its consumers and relay start) and give an HTTP client on it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float = 30, what: str = "condition"
) -> T:
    """Poll until `probe` returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def consume(consumer: BatchConsumer, count: int, what: str) -> None:
    """Start `consumer`, wait until it has handled `count` records, stop it."""
    await consumer.start()
    try:

        async def handled() -> bool:
            return consumer.processed >= count

        await eventually(handled, what=what)
    finally:
        await consumer.stop()


async def produce(
    settings: Settings, topic: str, values: list[bytes], key: bytes | None = None
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


class TopicReader:
    """Reads what a topic receives from now on (positions taken at creation)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"reader-{uuid.uuid4().hex[:6]}",
        )
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic) or {0}
        tps = [TopicPartition(self._topic, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def read_for(self, seconds: float) -> list[object]:
        """Everything that arrives within `seconds` (to prove nothing more comes)."""
        assert self._consumer is not None
        records: list[object] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=100)
            for msgs in batches.values():
                records.extend(msgs)
        return records

    async def read(self, count: int, timeout_s: float = 30) -> list[object]:
        """At least `count` records, or fail after the timeout."""
        assert self._consumer is not None
        records: list[object] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(records)} of {count} records on {self._topic}")
            batches = await self._consumer.getmany(timeout_ms=200)
            for msgs in batches.values():
                records.extend(msgs)
        return records


async def total_records(settings: Settings, topic: str) -> int:
    """Records ever written to a topic (sum of end offsets; nothing is deleted in tests)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return int(sum(ends.values()))
    finally:
        await consumer.stop()
