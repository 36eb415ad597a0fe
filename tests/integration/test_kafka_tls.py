"""Broker security settings reach every Kafka client: with `JOURNEYMAN_KAFKA_SECURITY_PROTOCOL=SSL`
and a CA file, topic creation, the producer, the batch consumer and the dead-letter tool all
talk TLS. The embedded broker speaks plain TCP, so a TLS-terminating proxy stands in front of
it (and the broker advertises the proxy): a client that did not do TLS could not get through.
SASL cannot be exercised here (the embedded broker has no SASL), so only its options are
checked."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from journeyman.dlq import list_dead_letters
from journeyman.embedded import EmbeddedKafka, free_port
from shared.consumer import BatchConsumer, Record, Rejected
from shared.kafka import OutRecord, Producer, ensure_topics, security_options
from shared.settings import Settings
from shared.topics import EVENTS
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.integration


@pytest.fixture
async def tls_broker(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """(TLS bootstrap address, CA file the clients trust)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    front = free_port()
    broker = EmbeddedKafka(log_file=tmp_path / "broker.log", advertised_port=front)
    await asyncio.to_thread(broker.start)
    proxy = Proxy(front, broker.port, tls=server)
    await proxy.start()
    try:
        yield f"127.0.0.1:{front}", cafile
    finally:
        await proxy.cut()
        await asyncio.to_thread(broker.stop)


async def test_every_client_talks_tls_when_configured(
    tls_broker: tuple[str, Path], database_url: str
) -> None:
    bootstrap, cafile = tls_broker
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(cafile),
        kafka_session_timeout_ms=2_000,
        service_name="tls-test",
    )
    created = await ensure_topics(bootstrap, security=security_options(settings))
    assert EVENTS in created

    plain = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
    with pytest.raises(KafkaConnectionError):
        await plain.start()  # the same address without TLS is refused
    await plain.stop()

    run = uuid.uuid4().hex[:6]
    good = [f'{{"n": {i}, "run": "{run}"}}'.encode() for i in range(20)]
    producer = Producer(settings)
    await producer.start()
    seen: list[bytes] = []
    done = asyncio.Event()

    async def handler(records: Sequence[Record]) -> Sequence[Rejected]:
        seen.extend(r.value or b"" for r in records if r.value != b"bad")
        if len(seen) >= len(good):
            done.set()
        return [Rejected(r, "not JSON") for r in records if r.value == b"bad"]

    consumer = BatchConsumer(
        settings, topics=[EVENTS], group=f"tls-{run}", handler=handler, producer=producer
    )
    await consumer.start()
    try:
        await producer.send_batch(
            [OutRecord(EVENTS, v, b"k") for v in good[:10]]
            + [OutRecord(EVENTS, b"bad", b"k")]
            + [OutRecord(EVENTS, v, b"k") for v in good[10:]]
        )
        await asyncio.wait_for(done.wait(), timeout=60)
        letters = await list_dead_letters(settings)
    finally:
        await consumer.stop()
        await producer.stop()
    assert seen == good
    assert [d.reason for d in letters] == ["not JSON"]


def test_sasl_options_come_from_the_settings_and_are_required_together() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="journeyman",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    assert security_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "journeyman",
        "sasl_plain_password": "s3cret",
    }
    assert security_options(Settings()) == {}
    with pytest.raises(ValueError, match="SASL_USERNAME"):
        security_options(Settings(kafka_security_protocol="SASL_SSL"))
    assert "s3cret" not in repr(settings)
