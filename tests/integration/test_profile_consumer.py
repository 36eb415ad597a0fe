"""The profile consumer on the real broker and database: bad records go to the dead-letter
topic with their reason and nothing after them is lost; redelivery changes a profile once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from services.profile.app import create_app
from services.profile.consumer import events_handler
from shared.consumer import BatchConsumer
from shared.settings import Settings
from shared.topics import DEAD_LETTER, EVENTS
from tests.helpers import TopicReader, consume, eventually, produce, running, total_records

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-read"}


def _order(user: str, message_id: str, revenue: float = 10.0) -> bytes:
    return orjson.dumps(
        {"type": "track", "messageId": message_id, "userId": user, "event": "Order Completed",
         "properties": {"revenue": revenue}}
    )  # fmt: skip


async def _profile(client: httpx.AsyncClient, user: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/profiles/user:{user}", headers=OPS)
    return response.json() if response.status_code == 200 else None


async def test_bad_records_are_dead_lettered_and_the_rest_processed(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    key = f"user:{run}".encode()
    bad = [
        b'{"type": "track", "messageId": ',  # malformed JSON
        orjson.dumps({"type": "track", "userId": run, "event": "X"}),  # no messageId
        orjson.dumps({"type": "launch", "messageId": f"{run}-t", "userId": run}),  # unknown type
    ]
    async with TopicReader(settings, DEAD_LETTER) as dlq, running(create_app(settings)) as client:
        records = [_order(f"a-{run}", f"{run}-a"), *bad, _order(f"b-{run}", f"{run}-b")]
        await produce(settings, EVENTS, records, key=key)
        after = await eventually(lambda: _profile(client, f"b-{run}"), what="the event after")
        assert after["behaviour"]["orders_count"] == 1
        assert await _profile(client, f"a-{run}") is not None
        dead = [r for r in await dlq.read(3) if getattr(r, "key", None) == key]
        assert [r.value for r in dead] == bad  # type: ignore[attr-defined]
        reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]  # type: ignore[attr-defined]
        assert reasons[0].startswith("malformed JSON")
        assert "messageId" in reasons[1]
        assert "type" in reasons[2]
        headers = dict(dead[0].headers)  # type: ignore[attr-defined]
        assert headers["dlq_source_topic"] == EVENTS.encode()
        assert int(headers["dlq_source_offset"]) >= 0
        assert headers["dlq_consumer_group"] == b"profile"
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text  # the consumer keeps going


async def test_same_message_twice_changes_the_profile_once(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    user = f"r-{run}"
    app = create_app(settings)
    async with running(app) as client:
        first = _order(user, f"{run}-1", 25.0)
        await produce(settings, EVENTS, [first, first], key=f"user:{user}".encode())
        await produce(settings, EVENTS, [first, _order(user, f"{run}-2", 5.0)])
        profile = await eventually(lambda: _profile(client, user), what="the profile")

        async def both_orders() -> dict[str, Any] | None:
            p = await _profile(client, user)
            return p if p and p["behaviour"].get("orders_count") == 2 else None

        profile = await eventually(both_orders, what="the second order")
        assert profile["behaviour"]["total_revenue"] == 30.0
        assert profile["behaviour"]["event_count"] == 2

        # Redeliver the whole topic, as after a crash between the database commit and the
        # offset commit: a consumer in a fresh group reads everything again.
        runtime = app.state.runtime
        replay = BatchConsumer(
            settings, topics=[EVENTS], group=f"replay-{run}",
            handler=events_handler(runtime, runtime.relays[0]), producer=runtime.producer,
        )  # fmt: skip
        backlog = await total_records(settings, EVENTS)
        await consume(replay, backlog, "the replay to pass our records")
        again = await _profile(client, user)
        assert again is not None
        assert again["behaviour"] == profile["behaviour"]
        assert again["version"] == profile["version"]
        timeline = (await client.get(f"/v1/profiles/user:{user}/timeline", headers=OPS)).json()
        assert len(timeline["items"]) == 2


async def test_shuffled_and_redelivered_events_leave_aggregates_exact(settings: Settings) -> None:
    import random  # noqa: PLC0415  (only this test shuffles)

    run = uuid.uuid4().hex[:8]
    user = f"o-{run}"
    events = [
        {"type": "track", "messageId": f"{run}-{i}", "userId": user,
         "timestamp": f"2026-04-{i + 1:02d}T12:00:00Z", "event": "Order Completed",
         "properties": {"revenue": float(i + 1)}}
        for i in range(10)
    ] + [
        {"type": "identify", "messageId": f"{run}-id{i}", "userId": user,
         "timestamp": f"2026-04-0{i + 1}T13:00:00Z", "traits": {"plan": f"p{i}"}}
        for i in range(3)
    ]  # fmt: skip
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    values = [orjson.dumps(e) for e in shuffled]
    async with running(create_app(settings)) as client:
        # Half under one key, half under another (two partitions), then everything again.
        await produce(settings, EVENTS, values[::2], key=f"user:{user}".encode())
        await produce(settings, EVENTS, values[1::2], key=f"other:{user}".encode())
        await produce(settings, EVENTS, values, key=f"again:{user}".encode())

        async def all_applied() -> dict[str, Any] | None:
            p = await _profile(client, user)
            return p if p and p["behaviour"]["event_count"] == len(events) else None

        profile = await eventually(all_applied, what="every event once")
        b = profile["behaviour"]
        assert b["orders_count"] == 10
        assert b["total_revenue"] == 55.0
        assert b["average_basket"] == 5.5
        assert b["first_order_at"].startswith("2026-04-01")
        assert b["last_order_at"].startswith("2026-04-10")
        assert profile["traits"] == {"plan": "p2"}  # the newest identify, whatever the order
        assert profile["version"] == len(events)
