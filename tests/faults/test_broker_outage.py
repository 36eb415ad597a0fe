"""The broker unreachable for a while: readiness says why, producers and the outbox hold what
they have, and everything drains afterwards with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from journeyman.embedded import EmbeddedKafka, free_port
from shared.kafka import ensure_topics
from tests import reliability
from tests.faults.common import assert_exactly_once, make_stack, stream
from tests.faults.proxy import Proxy

pytestmark = pytest.mark.faults
CUSTOMERS, ORDERS_EACH = 30, 2


@pytest.fixture
async def proxied_broker(tmp_path: Path) -> AsyncIterator[tuple[str, str, Proxy]]:
    """(address the services use, direct address, the proxy between them)."""
    front = free_port()
    broker = EmbeddedKafka(log_file=tmp_path / "broker.log", advertised_port=front)
    direct = await asyncio.to_thread(broker.start)
    proxy = Proxy(front, broker.port)
    await proxy.start()
    await ensure_topics(f"127.0.0.1:{front}")
    try:
        yield f"127.0.0.1:{front}", direct, proxy
    finally:
        await proxy.cut()
        await asyncio.to_thread(broker.stop)


async def test_broker_outage_then_drain(
    proxied_broker: tuple[str, str, Proxy], database_url: str, tmp_path: Path
) -> None:
    front, _, proxy = proxied_broker
    stack = make_stack(tmp_path / "home", database_url, front)
    await asyncio.to_thread(stack.start, 120)
    try:
        info = stack.info
        assert info is not None
        run = uuid.uuid4().hex[:6]
        seen_down: dict[str, str] = {}

        async def outage() -> None:
            await proxy.cut()
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(100):
                    response = await client.get(f"{info.services['journey']}/readyz")
                    if response.status_code == 503:
                        seen_down.update(response.json()["checks"])
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            await proxy.start()

        # The stream itself goes through the proxy too, so the test's producer waits as well.
        await stream(info, run, CUSTOMERS, ORDERS_EACH, {CUSTOMERS // 2: outage})
        assert seen_down["broker"].startswith("unreachable")
        await assert_exactly_once(info, run, CUSTOMERS, ORDERS_EACH)
        reliability.record(faults_survived=1)
    finally:
        await asyncio.to_thread(stack.stop)
