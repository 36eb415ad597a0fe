"""A service's shutdown is bounded: a part that hangs is logged and left, and the parts after
it still stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared import runtime as runtime_module
from shared.runtime import Runtime
from shared.settings import Settings


async def test_a_hanging_stopper_does_not_hold_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "STOP_TIMEOUT_S", 0.2)
    runtime = Runtime(Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    stopped: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def first() -> None:  # registered first, so stopped last
        stopped.append("first")

    runtime.on_stop(first)
    runtime.on_stop(hangs)
    with caplog.at_level(logging.WARNING, logger="shared.runtime"):
        await asyncio.wait_for(runtime.stop(), timeout=5)
    assert stopped == ["first"]
    assert "hangs" in caplog.text
    assert "left it" in caplog.text
