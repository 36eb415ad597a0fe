"""Stand-ins for the journey and channels services in contract tests: a real HTTP server that
answers the agreed JSON shapes (`GET /v1/journeys`, `/v1/journeys/{id}/stats`,
`/v1/profiles/{id}/journeys`, `/v1/messages/stats`), and only to the ops key, so a test also
proves the console sends it. The shapes are those of the cross-team agreement; the real
services are built on other branches."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException

from shared.web import SERVER_KEEP_ALIVE_S

JOURNEY_ID = "cart-recovery"
OPS_KEYS = {"ops-write", "ops-read"}  # the keys of the `settings` fixture

JOURNEYS: dict[str, Any] = {
    "journeys": [
        {"id": JOURNEY_ID, "name": "Cart recovery", "version": 2, "enabled": True,
         "instances": {"active": 120, "completed": 700, "exited": 180}},
    ],
    "refused": [],
}  # fmt: skip

STATS: dict[str, Any] = {
    "journey_id": JOURNEY_ID,
    "version": 2,
    "instances": {"active": 120, "completed": 700, "exited": 180},
    "steps": [
        {"step_id": "trigger", "type": "trigger", "entered": 1000, "waiting": 0, "exited": 0,
         "converted": 0, "branches": {}},
        {"step_id": "reminder", "type": "send", "entered": 900, "waiting": 0, "exited": 0,
         "converted": 90, "branches": {}},
        {"step_id": "wait-1d", "type": "wait", "entered": 900, "waiting": 120, "exited": 30,
         "converted": 40, "branches": {}},
        {"step_id": "opened?", "type": "branch", "entered": 750, "waiting": 0, "exited": 0,
         "converted": 0, "branches": {"opened": 300, "not opened": 450}},
        {"step_id": "coupon-sms", "type": "send", "entered": 450, "waiting": 0, "exited": 0,
         "converted": 50, "branches": {}},
        {"step_id": "done", "type": "exit", "entered": 750, "waiting": 0, "exited": 750,
         "converted": 0, "branches": {}},
    ],
    "goal": {"event": "Order Completed", "conversions": 190},
    "groups": {"treatment": {"entered": 900, "converted": 180},
               "holdout": {"entered": 100, "converted": 10}},
    "graph": {
        "nodes": [
            {"id": "trigger", "type": "trigger", "label": "Cart Abandoned"},
            {"id": "reminder", "type": "send", "label": "Email reminder"},
            {"id": "wait-1d", "type": "wait", "label": "Wait 1 day"},
            {"id": "opened?", "type": "branch", "label": "Opened?"},
            {"id": "coupon-sms", "type": "send", "label": "SMS coupon"},
            {"id": "done", "type": "exit", "label": "Exit"},
        ],
        "edges": [
            {"from": "trigger", "to": "reminder", "label": None},
            {"from": "reminder", "to": "wait-1d", "label": None},
            {"from": "wait-1d", "to": "opened?", "label": None},
            {"from": "opened?", "to": "done", "label": "opened"},
            {"from": "opened?", "to": "coupon-sms", "label": "not opened"},
            {"from": "coupon-sms", "to": "done", "label": None},
        ],
    },
}  # fmt: skip

MESSAGE_STATS: dict[str, Any] = {
    "totals": {
        "email": {"sent": 900, "delivered": 880, "opened": 300, "clicked": 120,
                  "unsubscribed": 9, "bounced": 20, "failed": 0, "suppressed": 40,
                  "deferred": 5},
        "sms": {"sent": 450, "delivered": 440, "opened": 0, "clicked": 60, "unsubscribed": 2,
                "bounced": 0, "failed": 10, "suppressed": 12, "deferred": 0},
    },
    "series": [
        {"bucket": "2026-11-28T00:00:00+00:00", "channel": "email", "sent": 300,
         "delivered": 295, "opened": 100, "clicked": 40, "unsubscribed": 3, "bounced": 5,
         "failed": 0},
        {"bucket": "2026-11-29T00:00:00+00:00", "channel": "email", "sent": 350,
         "delivered": 340, "opened": 120, "clicked": 50, "unsubscribed": 4, "bounced": 10,
         "failed": 0},
        {"bucket": "2026-11-30T00:00:00+00:00", "channel": "email", "sent": 250,
         "delivered": 245, "opened": 80, "clicked": 30, "unsubscribed": 2, "bounced": 5,
         "failed": 0},
        {"bucket": "2026-11-29T00:00:00+00:00", "channel": "sms", "sent": 200,
         "delivered": 195, "opened": 0, "clicked": 25, "unsubscribed": 1, "bounced": 0,
         "failed": 5},
        {"bucket": "2026-11-30T00:00:00+00:00", "channel": "sms", "sent": 250,
         "delivered": 245, "opened": 0, "clicked": 35, "unsubscribed": 1, "bounced": 0,
         "failed": 5},
    ],
    "by_step": [
        {"journey_id": JOURNEY_ID, "step_id": "reminder", "channel": "email", "sent": 900,
         "delivered": 880, "opened": 300, "clicked": 120, "unsubscribed": 9, "bounced": 20,
         "failed": 0},
        {"journey_id": JOURNEY_ID, "step_id": "coupon-sms", "channel": "sms", "sent": 450,
         "delivered": 440, "opened": 0, "clicked": 60, "unsubscribed": 2, "bounced": 0,
         "failed": 10},
    ],
}  # fmt: skip


def peers_app(profile_journeys: dict[str, Any] | None = None) -> FastAPI:
    """The journey and channels APIs in one app (tests point both URLs at it)."""
    app = FastAPI()
    app.state.calls = []

    def check(authorization: str | None) -> None:
        if authorization not in {f"Bearer {k}" for k in OPS_KEYS}:
            raise HTTPException(401, "missing API key")

    @app.get("/v1/journeys")
    async def journeys(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        check(authorization)
        return JOURNEYS

    @app.get("/v1/journeys/{journey_id}/stats")
    async def stats(
        journey_id: str, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        check(authorization)
        if journey_id != JOURNEY_ID:
            raise HTTPException(404, f"journey_id: no journey {journey_id!r}")
        return STATS

    @app.get("/v1/profiles/{profile_id}/journeys")
    async def instances(
        profile_id: str, authorization: str | None = Header(default=None)
    ) -> dict[str, Any]:
        check(authorization)
        found: dict[str, Any] = (profile_journeys or {}).get(profile_id, {"instances": []})
        return found

    @app.get("/v1/messages/stats")
    async def message_stats(
        journey_id: str | None = None,
        bucket: str = "day",
        authorization: str | None = Header(default=None),
    ) -> dict[str, Any]:
        check(authorization)
        app.state.calls.append({"journey_id": journey_id, "bucket": bucket})
        return MESSAGE_STATS

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serving(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Serve an app over real HTTP on loopback (uvicorn in this event loop); yields its URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
