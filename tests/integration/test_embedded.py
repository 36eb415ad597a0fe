"""The embedded launchers against the real things: PostgreSQL from the wheel over TCP (reused while
it runs, data kept across restarts, a crashed server's leftovers ignored) and the Tansu broker
(a topic created, a record produced and consumed by a consumer group)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres

pytestmark = pytest.mark.integration


async def _fetch(url: str, query: str) -> object:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _gone(pid: int) -> None:
    """Until the killed process is dead (a zombie counts: nobody may reap it in a container)."""
    for _ in range(200):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"pid {pid} survived SIGKILL")


async def test_postgres_is_reused_while_running_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / ".journeyman" / "postgres"
    first = EmbeddedPostgres(data_dir)
    url = await asyncio.to_thread(first.start)
    try:
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert url.endswith("/journeyman")
        assert await _fetch(url, "SELECT 1") == 1
        await _fetch(url, "CREATE TABLE kept AS SELECT 'still here'::text AS note")

        second = EmbeddedPostgres(data_dir)  # a second `journeyman up` while the first runs
        assert await asyncio.to_thread(second.start) == url
        assert second.running
        assert await _fetch(second.url, "SELECT note FROM kept") == "still here"
    finally:
        await asyncio.to_thread(first.stop)
    assert not first.running

    again = EmbeddedPostgres(data_dir)
    assert await asyncio.to_thread(again.start) == url  # same port as last time
    try:
        assert await _fetch(url, "SELECT note FROM kept") == "still here"
    finally:
        await asyncio.to_thread(again.stop)


async def test_postgres_starts_over_a_crashed_servers_leftovers(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "postgres", database="crash_test")
    url = await asyncio.to_thread(pg.start)
    try:
        await _fetch(url, "CREATE TABLE kept AS SELECT 42 AS answer")
        pid = int((tmp_path / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)  # postmaster.pid and the socket lock file stay behind
        await _gone(pid)

        assert await asyncio.to_thread(pg.start) == url
        assert await _fetch(url, "SELECT answer FROM kept") == 42  # committed, so recovered
    finally:
        await asyncio.to_thread(pg.stop)


async def test_kafka_round_trip(tmp_path: Path) -> None:
    broker = EmbeddedKafka(log_file=tmp_path / "broker.log")
    bootstrap = await asyncio.to_thread(broker.start)
    try:
        assert bootstrap == f"127.0.0.1:{broker.port}"
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("jm.test", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait("jm.test", b"hello", key=b"customer-1")
        finally:
            await producer.stop()

        # Tansu answers a JoinGroup after half the session timeout: keep it short in tests.
        consumer = AIOKafkaConsumer(
            "jm.test", bootstrap_servers=bootstrap, group_id="jm-test",
            auto_offset_reset="earliest", session_timeout_ms=2000, heartbeat_interval_ms=500,
        )  # fmt: skip
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (b"customer-1", b"hello")
    finally:
        await asyncio.to_thread(broker.stop)
    assert not broker.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=1).close()


def test_kafka_refuses_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        broker = EmbeddedKafka(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="already in use"):
            broker.start()
        assert not broker.running
