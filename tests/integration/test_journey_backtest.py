"""`backtest` reads the profile service's stored timeline (read-only) and replays it through a
draft journey: entries, per-step counts, sends and conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from journeyman.journeytools import load_history, replay
from services.journey.dsl import Journey

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)

DRAFT = Journey.model_validate({
    "id": "draft", "name": "Draft", "version": 1,
    "trigger": {"event": "Checkout Started"},
    "exit_on": [{"event": "Order Completed", "match": ["cart_id"]}],
    "goal": {"event": "Order Completed", "within": "2d"},
    "steps": [
        {"id": "wait", "type": "wait_for_event", "event": "Order Completed", "match": ["cart_id"],
         "timeout": "4h", "on_event": "done"},
        {"id": "remind", "type": "send", "channel": "email", "template": "cart-reminder"},
        {"id": "done", "type": "exit"},
    ],
})  # fmt: skip


async def test_backtest_replays_the_stored_timeline(database_url: str) -> None:
    db = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    rows = []
    for i, buys in enumerate((True, False, False)):
        pid, at = f"p{i}", NOW - timedelta(days=3)
        events = [("Checkout Started", at), *([("Order Completed", at + timedelta(hours=1))]
                                               if buys else [])]  # fmt: skip
        for n, (name, when) in enumerate(events):
            body = {
                "type": "track",
                "event": name,
                "messageId": f"{pid}-{n}",
                "userId": pid,
                "timestamp": when.isoformat(),
                "properties": {"cart_id": f"c{i}"},
            }
            rows.append((pid, when, f"{pid}-{n}", "track", name, orjson.dumps(body).decode()))
        await db.execute(
            "INSERT INTO profile.profiles (profile_id, user_id, version, traits, behaviour,"
            " consent, updated_at) VALUES ($1, $1, 1, '{}', '{}', '{}', now())", pid)  # fmt: skip
    old = ("p9", NOW - timedelta(days=90), "old", "track", "Checkout Started", '{"type": "track"}')
    await db.executemany(
        "INSERT INTO profile.timeline (profile_id, timestamp, message_id, type, event, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)", [*rows, old])  # fmt: skip
    await db.close()
    history, profiles = await load_history(database_url, NOW - timedelta(days=30))
    assert sorted(history) == ["p0", "p1", "p2"]  # the 90-day-old event is outside the window
    result = replay(DRAFT, history, profiles, NOW)
    assert (result.customers, result.events, result.entered, result.converted) == (3, 4, 3, 1)
    assert result.per_step == {"wait": 3, "remind": 2, "done": 2}
    assert result.sends == {"cart-reminder": 2}
