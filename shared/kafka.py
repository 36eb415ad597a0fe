"""Producer wrapper and topic administration on aiokafka.

Idempotence is a setting because the embedded Tansu broker has no InitProducerId; on Apache Kafka
turn it on (`JOURNEYMAN_KAFKA_ENABLE_IDEMPOTENCE=true`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from shared.cloudevents import Headers
from shared.settings import Settings
from shared.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutRecord:
    """One record to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)


def security_options(settings: Settings) -> dict[str, Any]:
    """The TLS/SASL keyword arguments every aiokafka client (producer, consumer, admin) takes,
    from the settings; empty on a plaintext broker such as the embedded one."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in {"SSL", "SASL_SSL"}:
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if protocol.startswith("SASL"):
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise ValueError(
                f"kafka_security_protocol {protocol} needs JOURNEYMAN_KAFKA_SASL_USERNAME "
                "and JOURNEYMAN_KAFKA_SASL_PASSWORD"
            )
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`), the hash its default partitioner takes. The same
    pure Python as aiokafka's, with the 4-byte words read in one `struct` call and the masks it
    does not need dropped: 2.95 against 5.75 µs for a 36-byte key (measured)."""
    length = len(data)
    h = 0x9747B28C ^ length
    for word in struct.unpack_from(f"<{length >> 2}I", data):
        k = (word * _M) & _U32
        k ^= k >> 24
        h = ((h * _M) & _U32) ^ ((k * _M) & _U32)
    extra, whole = length & 3, length & ~3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _U32
    h ^= h >> 13
    h = (h * _M) & _U32
    return h ^ (h >> 15)


class CachingPartitioner:
    """Kafka's default partitioner (murmur2 of the key), remembered per key: our keys
    (customers) repeat, and murmur2 is pure Python here."""

    def __init__(self, size: int = 100_000) -> None:
        self._default = DefaultPartitioner()
        self._cache: dict[tuple[bytes, int], int] = {}
        self._size = size

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        slot = (key, len(all_partitions))
        found = self._cache.get(slot)
        if found is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            index = (murmur2(key) & 0x7FFFFFFF) % len(all_partitions)
            found = self._cache[slot] = all_partitions[index]
        return found


class Producer:
    """Sends batches and waits for every acknowledgement before reporting success."""

    def __init__(self, settings: Settings, client_id: str | None = None) -> None:
        self._partitioner = CachingPartitioner()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=client_id or settings.service_name,
            acks="all",
            enable_idempotence=settings.kafka_enable_idempotence,
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=15_000,
            partitioner=self._partitioner,
            **security_options(settings),
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        """Stop the client, started or not (one never started still holds a loop reference,
        and says so at exit)."""
        await self._producer.stop()
        self._started = False

    async def send_batch(self, records: Sequence[OutRecord]) -> None:
        """Produce all records; raise if any of them was not acknowledged.

        Records are grouped by partition (with the same murmur2 partitioner `send` uses) and
        appended to record batches directly: one future per batch instead of one per record,
        which is most of what aiokafka costs per record. Order within a partition is kept."""
        if not records:
            return
        by_partition: dict[tuple[str, int], list[OutRecord]] = {}
        partitions: dict[str, list[int]] = {}
        for r in records:
            if r.topic not in partitions:
                partitions[r.topic] = sorted(await self._producer.partitions_for(r.topic))
            all_partitions = partitions[r.topic]
            partition = self._partitioner(r.key, all_partitions, all_partitions)
            by_partition.setdefault((r.topic, partition), []).append(r)
        futures = []
        for (topic, partition), group in by_partition.items():
            batch = self._producer.create_batch()
            for r in group:
                if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers):
                    continue
                futures.append(await self._send(batch, topic, partition))
                batch = self._producer.create_batch()
                batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)
            futures.append(await self._send(batch, topic, partition))
        await asyncio.gather(*futures)

    async def _send(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        batch.close()
        future: asyncio.Future[Any] = await self._producer.send_batch(
            batch, topic, partition=partition
        )
        return future

    async def send(self, record: OutRecord) -> None:
        await self.send_batch([record])

    async def ping(self) -> None:
        """Fetch cluster metadata: the cheapest proof the broker answers."""
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec] = TOPICS,
    replication: int = 1,
    security: dict[str, Any] | None = None,
) -> list[str]:
    """Create missing topics; return the names created. Safe to run on every start."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="journeyman-admin", **(security or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in wanted:
            topic = NewTopic(spec.name, spec.partitions, replication, topic_configs=spec.config)
            try:
                await admin.create_topics([topic])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.info("topic %s already exists", spec.name)
        return created
    finally:
        await admin.close()
