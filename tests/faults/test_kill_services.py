"""Kill -9 each service in turn in the middle of a steady event stream and restart it:
afterwards everything happened exactly once (see `common.assert_exactly_once`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from journeyman.stack import SERVICES, Stack
from tests import reliability
from tests.faults.common import assert_exactly_once, make_stack, stream

pytestmark = pytest.mark.faults
CUSTOMERS, ORDERS_EACH = 40, 3


@pytest.fixture
def stack(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    running = make_stack(tmp_path / "home", database_url, kafka_bootstrap)
    try:
        running.start(timeout_s=120)
        yield running
    finally:
        running.stop()


def _kill_and_restart(stack: Stack, victim: str) -> Callable[[], Awaitable[None]]:
    async def fault() -> None:
        await asyncio.sleep(0.3)  # let the victim get into its batch
        stack.kill(victim)
        await asyncio.to_thread(stack.restart, victim)

    return fault


async def test_kill_each_service_mid_stream(stack: Stack) -> None:
    assert stack.info is not None
    run = uuid.uuid4().hex[:6]
    spacing = CUSTOMERS * ORDERS_EACH // len(SERVICES)
    faults = {10 + k * spacing: _kill_and_restart(stack, s) for k, s in enumerate(SERVICES)}
    await stream(stack.info, run, CUSTOMERS, ORDERS_EACH, faults)
    await assert_exactly_once(stack.info, run, CUSTOMERS, ORDERS_EACH)
    reliability.record(faults_survived=len(SERVICES))
