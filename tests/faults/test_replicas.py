"""Two replicas of each service in one consumer group; kill one of each mid-stream: its
partitions move to the survivor and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from journeyman.stack import SERVICES, Stack
from tests import reliability
from tests.faults.common import assert_exactly_once, make_stack, stream

pytestmark = pytest.mark.faults
CUSTOMERS, ORDERS_EACH = 40, 2


@pytest.fixture
def stack(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    running = make_stack(tmp_path / "home", database_url, kafka_bootstrap)
    try:
        running.start(timeout_s=120)
        yield running
    finally:
        running.stop()


async def test_kill_one_of_two_replicas(stack: Stack) -> None:
    assert stack.info is not None
    replicas = [await asyncio.to_thread(stack.add_replica, service) for service in SERVICES]

    async def kill_replicas() -> None:
        await asyncio.sleep(0.3)
        for name in replicas:
            stack.kill(name)

    run = uuid.uuid4().hex[:6]
    await stream(stack.info, run, CUSTOMERS, ORDERS_EACH, {CUSTOMERS // 2: kill_replicas})
    await assert_exactly_once(stack.info, run, CUSTOMERS, ORDERS_EACH)
    reliability.record(faults_survived=len(replicas))
