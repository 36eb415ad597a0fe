"""The engine's pool on a real PostgreSQL: a connection cut while it sat idle is replaced on
checkout (pinged, as `pool_pre_ping` would), and one used a moment ago costs no ping."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.settings import Settings


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_connection_cut_by_the_server_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IDLE_PING_S", 0.2)
    engine = db.create_engine(Settings(database_url=database_url), pool_size=1)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # reused at once, no ping needed
        admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.4)  # idle longer than IDLE_PING_S: pinged, found dead, replaced
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
