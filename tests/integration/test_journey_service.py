"""The journey service on the real broker and database, with a manual clock: cart abandonment
both ways, redelivery, restart resuming waits, holdouts, versions, pause/resume/archive,
merges and erasure, segment triggers, profile updates and webhooks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.journey.app import create_app
from services.journey.settings import JourneySettings
from shared.clock import ManualClock
from shared.settings import Settings
from shared.topics import DISPATCH, EVENTS, PROFILE_EVENTS, SEGMENT_CHANGES
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-write"}
START = datetime(2026, 3, 2, 10, tzinfo=UTC)

CART = """id: cart
name: Cart abandonment
version: 1
trigger: {event: Checkout Started}
exit_on: [{event: Order Completed, match: [cart_id]}]
goal: {event: Order Completed, within: 2d}
steps:
  - {id: settle, type: wait, duration: 30m}
  - {id: wait-order, type: wait_for_event, event: Order Completed, match: [cart_id],
     timeout: 4h, on_event: done}
  - {id: reminder, type: send, channel: email, template: cart-reminder}
  - {id: done, type: exit}
"""
HOLDOUT = """id: held
name: Held out
version: 1
trigger: {event: Signed Up}
entry: {holdout_percent: 100}
goal: {event: Order Completed, within: 7d}
steps: [{id: hi, type: send, channel: email, template: hi}]
"""
TIER = """id: tier
name: Tier
version: 1
trigger: {segment: loyalty-premium}
exit_on: [{segment_exited: loyalty-premium}]
steps:
  - {id: mark, type: update_profile, traits: {tier: premium}}
  - {id: perks, type: send, channel: email, template: perks}
  - {id: later, type: wait, duration: 1d}
  - {id: again, type: send, channel: email, template: perks-reminder}
"""


def _config(base: Settings, tmp: Path, files: dict[str, str], **extra: Any) -> JourneySettings:
    directory = tmp / "journeys"
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (directory / f"{name}.yaml").write_text(body)
    return JourneySettings.model_validate(
        base.model_dump()
        | {"journeys_dir": str(directory), "journey_timer_interval_s": 0.05,
           "journey_refresh_interval_s": 0.2, **extra}
    )  # fmt: skip


def record(pid: str, mid: str, name: str, at: datetime, version: int = 1, **props: Any) -> bytes:
    return orjson.dumps(
        {
            "event": {"type": "track", "event": name, "messageId": mid, "userId": pid,
                      "timestamp": at.isoformat(), "properties": props},
            "profile": {"profile_id": pid, "version": version, "user_id": pid,
                        "traits": {"email": f"{pid}@example.com"}, "updated_at": at.isoformat()},
        }
    )  # fmt: skip


def change(pid: str, segment: str, kind: str, at: datetime) -> bytes:
    return orjson.dumps(
        {"profile_id": pid, "segment_id": segment, "change": kind, "changed_at": at.isoformat(),
         "profile": {"profile_id": pid, "version": 1, "user_id": pid, "updated_at": at.isoformat()}}
    )  # fmt: skip


def sends(records: list[Any], pid: str) -> list[tuple[str, str]]:
    out = []
    for r in records:
        body = orjson.loads(r.value)
        if body["profile_id"] == pid:
            out.append((body["step_id"], body["dispatch_id"]))
    return out


async def instances(client: Any, pid: str) -> list[dict[str, Any]]:
    body = (await client.get(f"/v1/profiles/{pid}/journeys", headers=OPS)).json()
    return list(body["instances"])


async def waiting_at(client: Any, pid: str, step: str) -> bool:
    return any(i["current_step"] == step and i["status"] == "active"
               for i in await instances(client, pid))  # fmt: skip


async def test_cart_abandonment_both_ways_and_redelivery(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(settings, tmp_path, {"cart": CART})
    clock = ManualClock(START)
    run = uuid.uuid4().hex[:6]
    abandons, buys, buys_late = f"a-{run}", f"b-{run}", f"c-{run}"
    async with (
        TopicReader(config, DISPATCH) as dispatch,
        running(create_app(config, clock)) as client,
    ):
        started = [record(p, f"{p}-1", "Checkout Started", START, cart_id=f"cart-{p}")
                   for p in (abandons, buys, buys_late)]  # fmt: skip
        await produce(config, PROFILE_EVENTS, started)
        for p in (abandons, buys, buys_late):
            await eventually(partial(waiting_at, client, p, "settle"), what=f"{p} settling")
        # `buys` orders during the first wait (between steps); another cart does not count.
        await produce(config, PROFILE_EVENTS, [
            record(buys, f"{buys}-2", "Order Completed", START, 2, cart_id=f"cart-{buys}"),
            record(abandons, f"{abandons}-2", "Order Completed", START, 2, cart_id="another"),
        ])  # fmt: skip
        await eventually(
            lambda: _status(client, buys, "exited"), what="exit on the order between steps"
        )
        clock.advance(timedelta(minutes=31))
        for p in (abandons, buys_late):
            await eventually(partial(waiting_at, client, p, "wait-order"), what=f"{p} waiting")
        await produce(config, PROFILE_EVENTS, [
            record(buys_late, f"{buys_late}-2", "Order Completed", START, 2,
                   cart_id=f"cart-{buys_late}"),
        ])  # fmt: skip
        await eventually(lambda: _status(client, buys_late, "exited"), what="order while waiting")
        clock.advance(timedelta(hours=5))
        got = await dispatch.read(1)
        assert sends(got, abandons) == [("reminder", sends(got, abandons)[0][1])]
        # Redelivery of everything: nothing moves, nothing more is sent.
        await produce(config, PROFILE_EVENTS, started)
        assert await dispatch.read_for(2.0) == []
        assert (await instances(client, abandons))[0]["status"] == "exited"  # exit step
        stats = (await client.get("/v1/journeys/cart/stats", headers=OPS)).json()
        by_step = {s["step_id"]: s for s in stats["steps"]}
        assert by_step["settle"]["entered"] == 3
        assert by_step["reminder"]["entered"] == 1
        assert by_step["wait-order"]["branches"] == {"timeout": 1}
        assert stats["instances"]["exited"] == 3
        assert stats["goal"]["conversions"] == 3  # the goal is any order, whatever the cart
        assert stats["groups"]["treatment"] == {"entered": 3, "converted": 3}
        assert {"from": "wait-order", "to": "done", "label": "event"} in stats["graph"]["edges"]


async def _status(client: Any, pid: str, status: str) -> bool:
    found = await instances(client, pid)
    return bool(found) and found[0]["status"] == status


async def test_a_restarted_engine_resumes_waits(settings: Settings, tmp_path: Path) -> None:
    config = _config(settings, tmp_path, {"cart": CART})
    clock = ManualClock(START)
    pid = f"r-{uuid.uuid4().hex[:6]}"
    async with running(create_app(config, clock)) as client:
        await produce(config, PROFILE_EVENTS, [
            record(pid, f"{pid}-1", "Checkout Started", START, cart_id="c")])  # fmt: skip
        await eventually(lambda: waiting_at(client, pid, "settle"), what="waiting")
    clock.advance(timedelta(hours=6))  # the first wait is overdue while nothing runs
    async with (
        TopicReader(config, DISPATCH) as dispatch,
        running(create_app(config, clock)) as client,
    ):
        await eventually(lambda: waiting_at(client, pid, "wait-order"), what="resumed wait")
        clock.advance(timedelta(hours=5))
        got = await dispatch.read(1)
        assert [s for s, _ in sends(got, pid)] == ["reminder"]
        history = " ".join(h["what"] for h in (await instances(client, pid))[0]["history"])
        assert "late" in history  # fired late, and says so


async def test_holdout_gets_nothing_but_is_counted(settings: Settings, tmp_path: Path) -> None:
    config = _config(settings, tmp_path, {"held": HOLDOUT})
    clock = ManualClock(START)
    pid = f"h-{uuid.uuid4().hex[:6]}"
    async with (
        TopicReader(config, DISPATCH) as dispatch,
        running(create_app(config, clock)) as client,
    ):
        await produce(config, PROFILE_EVENTS, [
            record(pid, f"{pid}-1", "Signed Up", START),
            record(pid, f"{pid}-2", "Order Completed", START, 2)], key=pid.encode())  # fmt: skip
        stats = await eventually(lambda: _converted(client, "held"), what="holdout conversion")
        assert stats["groups"]["holdout"] == {"entered": 1, "converted": 1}
        assert stats["groups"]["treatment"] == {"entered": 0, "converted": 0}
        assert await dispatch.read_for(1.0) == []


async def _converted(client: Any, journey: str) -> dict[str, Any] | None:
    stats = (await client.get(f"/v1/journeys/{journey}/stats", headers=OPS)).json()
    return stats if stats["goal"]["conversions"] else None


async def test_versions_pause_resume_archive_and_bad_files(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(settings, tmp_path, {"cart": CART, "broken": "id: broken\nname: [x\n"})
    clock = ManualClock(START)
    old, new = f"o-{uuid.uuid4().hex[:6]}", f"n-{uuid.uuid4().hex[:6]}"
    async with (
        TopicReader(config, DISPATCH) as dispatch,
        running(create_app(config, clock)) as client,
    ):
        listed = (await client.get("/v1/journeys", headers=OPS)).json()
        assert [j["id"] for j in listed["journeys"]] == ["cart"]
        assert "broken.yaml:3: invalid YAML" in listed["refused"][0]
        await produce(config, PROFILE_EVENTS, [
            record(old, f"{old}-1", "Checkout Started", START, cart_id="x")])  # fmt: skip
        await eventually(lambda: waiting_at(client, old, "settle"), what="v1 instance")
        v2 = CART.replace("version: 1", "version: 2").replace(
            "template: cart-reminder", "template: cart-reminder-v2"
        )
        made = await client.post("/v1/journeys", content=v2,
                                 headers={**OPS, "content-type": "application/yaml"})  # fmt: skip
        assert made.status_code == 201, made.text
        changed = await client.post(
            "/v1/journeys",
            content=v2.replace("30m", "1h"),
            headers={**OPS, "content-type": "application/yaml"},
        )
        assert changed.status_code == 409
        bad = await client.post(
            "/v1/journeys",
            content=v2.replace("type: exit", "type: nope"),
            headers={**OPS, "content-type": "application/yaml"},
        )
        assert bad.status_code == 400
        assert "body:" in bad.json()["detail"]
        await produce(config, PROFILE_EVENTS, [
            record(new, f"{new}-1", "Checkout Started", START, cart_id="y")])  # fmt: skip
        await eventually(lambda: waiting_at(client, new, "settle"), what="v2 instance")
        assert (await instances(client, old))[0]["version"] == 1
        assert (await instances(client, new))[0]["version"] == 2

        paused = await client.post("/v1/journeys/cart/pause", headers=OPS)
        assert paused.json()["status"] == "paused"
        clock.advance(timedelta(hours=6))
        # While paused nothing is sent, but exit criteria still apply: `new` orders its cart.
        await produce(config, PROFILE_EVENTS, [
            record(new, f"{new}-2", "Order Completed", START, 2, cart_id="y")])  # fmt: skip
        await eventually(partial(_status, client, new, "exited"), what="exit while paused")
        assert await dispatch.read_for(1.5) == []
        await client.post("/v1/journeys/cart/resume", headers=OPS)
        await eventually(partial(waiting_at, client, old, "wait-order"), what="resumed")
        assert "late" in " ".join(h["what"] for h in (await instances(client, old))[0]["history"])
        clock.advance(timedelta(hours=5))
        got: list[Any] = await dispatch.read(1)
        assert [orjson.loads(r.value)["template"] for r in got] == ["cart-reminder"]
        assert [orjson.loads(r.value)["profile_id"] for r in got] == [old]
        v2_instance = await instances(client, new)
        assert v2_instance[0]["version"] == 2
        assert v2_instance[0]["reason"] == "exit criterion: Order Completed"

        late = f"l-{uuid.uuid4().hex[:6]}"
        await produce(config, PROFILE_EVENTS, [
            record(late, f"{late}-1", "Checkout Started", clock.now(), cart_id="z")])  # fmt: skip
        await eventually(lambda: waiting_at(client, late, "settle"), what="instance to archive")
        archived = (await client.post("/v1/journeys/cart/archive", headers=OPS)).json()
        assert archived["instances_ended"] == 1
        assert (await instances(client, late))[0]["reason"] == "journey archived"


async def test_segment_trigger_profile_update_merge_and_erase(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(settings, tmp_path, {"tier": TIER})
    clock = ManualClock(START)
    pid, other = f"s-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}"
    async with TopicReader(config, EVENTS) as events, TopicReader(config, DISPATCH) as dispatch, \
            running(create_app(config, clock)) as client:  # fmt: skip
        await produce(config, SEGMENT_CHANGES, [change(pid, "loyalty-premium", "entered", START)])
        read: list[Any] = await events.read(1)
        identify = orjson.loads(read[0].value)
        assert identify["type"] == "identify"
        assert identify["traits"] == {"tier": "premium"}
        assert identify["userId"] == pid
        assert [s for s, _ in sends(await dispatch.read(1), pid)] == ["perks"]
        # Merged into another profile: the instance follows, then leaving the segment ends it.
        merged = orjson.dumps({
            "event": {"type": "track", "event": "Profile Merged", "messageId": f"{pid}-merge",
                      "userId": other, "properties": {"merged_profile_id": pid,
                                                      "into_profile_id": other}},
            "profile": {"profile_id": other, "version": 3, "user_id": other,
                        "updated_at": START.isoformat()},
        })  # fmt: skip
        await produce(config, PROFILE_EVENTS, [merged])
        await eventually(lambda: waiting_at(client, other, "later"), what="moved instance")
        assert await instances(client, pid) == []
        await produce(config, SEGMENT_CHANGES, [change(other, "loyalty-premium", "exited", START)])
        await eventually(lambda: _status(client, other, "exited"), what="segment exit")
        erased = orjson.dumps({
            "event": {"type": "track", "event": "Profile Erased", "messageId": f"{other}-erase",
                      "userId": other, "properties": {"profile_id": other}},
            "profile": {"profile_id": other, "version": 2**62, "traits": {"erased": True},
                        "updated_at": START.isoformat()},
        })  # fmt: skip
        await produce(config, PROFILE_EVENTS, [erased])
        await eventually(lambda: _gone(client, other), what="erasure")


async def _gone(client: Any, pid: str) -> bool:
    return await instances(client, pid) == []


async def test_webhooks_refuse_internal_targets_unless_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hook = f"""id: hook
name: Hook
version: 1
trigger: {{event: Go}}
steps: [{{id: call, type: webhook, url: "http://127.0.0.1:{port}/in", body: {{hello: world}}}}]
"""
    for allow, expect in (([], 0), (["127.0.0.0/8"], 1)):
        config = _config(settings, tmp_path / str(len(allow)), {"hook": hook},
                         journey_webhook_allow=allow)  # fmt: skip
        pid = f"w-{uuid.uuid4().hex[:6]}"
        async with running(create_app(config, ManualClock(START))) as client:
            await produce(config, PROFILE_EVENTS, [record(pid, f"{pid}-1", "Go", START)])
            await eventually(partial(_status, client, pid, "completed"), what="hook step")
            await asyncio.sleep(1.5)
        assert len(received) == expect
    server.close()
    assert b'{"hello":"world"}' in received[0]


BIRTHDAY = """id: bday
name: Birthday
version: 1
trigger: {date_attribute: birthday, yearly: true, at: "09:00"}
steps: [{id: card, type: send, channel: email, template: birthday}]
"""
WEEKLY = """id: weekly
name: Weekly
version: 1
trigger: {schedule: "0 9 * * 1", segment: lapsed-customers}
steps: [{id: nudge, type: send, channel: email, template: win-back}]
"""


def with_birthday(pid: str, mid: str, at: datetime, birthday: str) -> bytes:
    body = orjson.loads(record(pid, mid, "Product Viewed", at))
    body["profile"]["traits"]["birthday"] = birthday
    return orjson.dumps(body)


async def test_date_and_schedule_triggers_fire_on_the_clock(
    settings: Settings, tmp_path: Path
) -> None:
    """A birthday fires once at 09:00 on the day (a later event does not plan it again); a
    weekly schedule enters each member of its segment at every run."""
    config = _config(settings, tmp_path, {"bday": BIRTHDAY, "weekly": WEEKLY})
    clock = ManualClock(START)  # Monday 2 March 2026, 10:00 UTC
    run = uuid.uuid4().hex[:6]
    born, member, outsider = f"d-{run}", f"w-{run}", f"x-{run}"
    async with TopicReader(config, DISPATCH) as dispatch, running(create_app(config, clock)):
        await produce(
            config, PROFILE_EVENTS, [with_birthday(born, f"{born}-1", START, "1990-03-04")]
        )
        await produce(
            config,
            SEGMENT_CHANGES,
            [change(member, "lapsed-customers", "entered", START)],
            key=member.encode(),
        )
        await produce(config, SEGMENT_CHANGES, [  # keyed by customer, so in order
            change(outsider, "lapsed-customers", "entered", START),
            change(outsider, "lapsed-customers", "exited", START + timedelta(seconds=1)),
        ], key=outsider.encode())  # fmt: skip
        assert await dispatch.read_for(1.5) == []
        clock.set(datetime(2026, 3, 4, 9, 0, 5, tzinfo=UTC))
        first: list[Any] = await dispatch.read(1)
        assert [orjson.loads(r.value)["profile_id"] for r in first] == [born]
        # Another event the same day must not plan (and fire) today's birthday again.
        await produce(config, PROFILE_EVENTS, [
            with_birthday(born, f"{born}-2", clock.now(), "1990-03-04")])  # fmt: skip
        clock.set(datetime(2026, 3, 9, 9, 0, 5, tzinfo=UTC))  # the next Monday, 09:00
        weekly: list[Any] = await dispatch.read(1)
        assert [(orjson.loads(r.value)["profile_id"], orjson.loads(r.value)["template"])
                for r in weekly] == [(member, "win-back")]  # fmt: skip
        clock.set(datetime(2026, 3, 16, 9, 0, 5, tzinfo=UTC))
        again: list[Any] = await dispatch.read(1)
        assert [orjson.loads(r.value)["profile_id"] for r in again] == [member]
        assert await dispatch.read_for(1.0) == []


async def test_a_bad_file_never_stops_the_published_version(
    settings: Settings, tmp_path: Path
) -> None:
    config = _config(settings, tmp_path, {"cart": CART})
    clock = ManualClock(START)
    async with running(create_app(config, clock)):
        pass  # publishes cart v1
    (Path(config.journeys_dir) / "cart.yaml").write_text(CART.replace("steps:", "stepz:"))
    pid = f"k-{uuid.uuid4().hex[:6]}"
    async with running(create_app(config, clock)) as client:
        listed = (await client.get("/v1/journeys", headers=OPS)).json()
        assert [(j["id"], j["version"], j["status"]) for j in listed["journeys"]] == [
            ("cart", 1, "active")]  # fmt: skip
        assert "cart.yaml" in listed["refused"][0]
        await produce(config, PROFILE_EVENTS, [
            record(pid, f"{pid}-1", "Checkout Started", START, cart_id="c")])  # fmt: skip
        await eventually(partial(waiting_at, client, pid, "settle"), what="entry into stored v1")


THANKS = """id: thanks
name: Thanks
version: 1
trigger: {event: Order Completed}
steps: [{id: mail, type: send, channel: email, template: order-thank-you}]
"""


async def test_two_orders_in_one_batch_are_both_thanked(settings: Settings, tmp_path: Path) -> None:
    """An instance that ends at once no longer counts against max_concurrent, even within the
    batch that started it."""
    config = _config(settings, tmp_path, {"thanks": THANKS})
    pid = f"t-{uuid.uuid4().hex[:6]}"
    orders = [record(pid, f"{pid}-{n}", "Order Completed", START, n) for n in range(1, 4)]
    async with TopicReader(config, DISPATCH) as dispatch:
        await produce(config, PROFILE_EVENTS, orders, key=pid.encode())  # queued: one batch
        async with running(create_app(config, ManualClock(START))):
            got = await dispatch.read(3)
            assert len({d for _, d in sends(got, pid)}) == 3


async def test_a_large_batch_handled_in_lanes_thanks_each_customer_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Hundreds of orders queued before the engine starts reach it as one large batch, handled
    in two lanes at once: each customer is thanked once, and redelivered records change
    nothing."""
    config = _config(settings, tmp_path, {"thanks": THANKS})
    assert config.journey_lanes == 2
    run = uuid.uuid4().hex[:6]
    pids = [f"lane-{run}-{i}" for i in range(300)]
    async with TopicReader(config, DISPATCH) as dispatch:
        producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap_servers)
        await producer.start()
        try:
            for pid in pids:  # each customer: an order, then its redelivery
                order = record(pid, f"{pid}-1", "Order Completed", START)
                for _ in range(2):
                    await producer.send(PROFILE_EVENTS, value=order, key=pid.encode())
            await producer.flush()
        finally:
            await producer.stop()
        async with running(create_app(config, ManualClock(START))):
            read: list[Any] = await dispatch.read(len(pids))
            got = [orjson.loads(r.value) for r in read]
            assert sorted(d["profile_id"] for d in got) == sorted(pids)
            assert len({d["dispatch_id"] for d in got}) == len(pids)
            late: list[Any] = await dispatch.read_for(1.0)
            assert [r for r in late if orjson.loads(r.value)["profile_id"] in set(pids)] == []
