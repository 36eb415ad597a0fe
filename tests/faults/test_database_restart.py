"""Stop PostgreSQL under load and start it again: the services say they are not ready (naming
the database), retry with backoff, recover by themselves, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from journeyman.embedded import EmbeddedPostgres
from journeyman.stack import Stack
from shared.migrations import upgrade
from tests import reliability
from tests.conftest import postgres_home
from tests.faults.common import assert_exactly_once, make_stack, stream

pytestmark = pytest.mark.faults
CUSTOMERS, ORDERS_EACH = 30, 2


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own, since the test stops it."""
    home = postgres_home()
    server = EmbeddedPostgres(home / "data")
    upgrade(server.start())
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def stack(own_postgres: EmbeddedPostgres, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    running = make_stack(tmp_path / "home", own_postgres.url, kafka_bootstrap)
    try:
        running.start(timeout_s=120)
        yield running
    finally:
        running.stop()


async def test_database_restart_under_load(stack: Stack, own_postgres: EmbeddedPostgres) -> None:
    info = stack.info
    assert info is not None
    run = uuid.uuid4().hex[:6]
    seen_down: dict[str, str] = {}

    async def outage() -> None:
        await asyncio.to_thread(own_postgres.stop)
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(50):
                response = await client.get(f"{info.services['profile']}/readyz")
                if response.status_code == 503:
                    seen_down.update(response.json()["checks"])
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        await asyncio.to_thread(own_postgres.start)

    await stream(info, run, CUSTOMERS, ORDERS_EACH, {CUSTOMERS // 2: outage})
    assert seen_down["database"].startswith("unreachable")
    await assert_exactly_once(info, run, CUSTOMERS, ORDERS_EACH)
    reliability.record(faults_survived=1)
    async with httpx.AsyncClient(timeout=5) as client:
        for url in info.services.values():
            assert (await client.get(f"{url}/readyz")).status_code == 200
