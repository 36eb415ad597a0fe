"""An unchanged Segment client (`segment-analytics-python`) pointed at our host: identify and
track from the same customer land on one profile, through the real HTTP server (uvicorn on a
free port), the broker and the consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from segment import analytics  # type: ignore[import-untyped]  # the client ships no types

from journeyman.embedded import free_port
from services.profile.app import create_app
from shared.settings import Settings
from shared.web import SERVER_KEEP_ALIVE_S
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on loopback, in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_segment_python_client_identify_and_track_land_on_one_profile(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    user, anon = f"seg-{run}", f"anon-{run}"
    errors: list[Any] = []
    async with served(create_app(settings)) as host:
        analytics.write_key = "wk-test"
        analytics.host = host
        analytics.sync_mode = True
        analytics.on_error = lambda error, _items: errors.append(error)
        analytics.default_client = None
        try:
            await asyncio.to_thread(analytics.page, anonymous_id=anon, name="Home")
            await asyncio.to_thread(
                analytics.identify, user, {"email": f"{run}@example.com", "first_name": "Ana"},
                anonymous_id=anon,
            )  # fmt: skip
            await asyncio.to_thread(
                analytics.track, user, "Order Completed", {"order_id": "o1", "revenue": 42.5}
            )
        finally:
            analytics.default_client = None
        assert errors == []

        async with httpx.AsyncClient(base_url=host, timeout=10) as client:

            async def complete() -> dict[str, Any] | None:
                response = await client.get(
                    f"/v1/profiles/user:{user}", headers={"X-API-Key": "ops-read"}
                )
                body = response.json() if response.status_code == 200 else None
                return body if body and body["behaviour"].get("event_count") == 3 else None

            profile = await eventually(complete, what="identify and track on one profile")
            assert profile["traits"]["first_name"] == "Ana"
            assert profile["behaviour"]["orders_count"] == 1
            assert profile["behaviour"]["total_revenue"] == 42.5
            assert profile["behaviour"]["page_views"] == 1
            by_anon = await client.get(
                f"/v1/profiles/anon:{anon}", headers={"X-API-Key": "ops-read"}
            )
            assert by_anon.json()["profile_id"] == profile["profile_id"]
