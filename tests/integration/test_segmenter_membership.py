"""The segmenter on the real broker and database: a threshold crossed once publishes one
Segment Entered and redelivery publishes nothing; a time-based segment moves a customer with no
new event when the (test) clock moves; merges and erasures move or drop membership; the ops API
answers about it all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.segmenter.app import create_app
from services.segmenter.settings import SegmenterSettings
from shared.clock import ManualClock
from shared.contracts import ERASED_VERSION, PROFILE_ERASED, PROFILE_MERGED
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS, SEGMENT_CHANGES
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-write"}
START = datetime(2026, 3, 1, 9, tzinfo=UTC)

BIG_SPENDERS = """id: big-spenders
name: Big spenders
condition: has(profile.behaviour.total_revenue) && profile.behaviour.total_revenue >= 500.0
"""
MONTHLY = """id: monthly-500
name: 500 in 30 days
where: {aggregate: sum, event: Order Completed, property: revenue, within_days: 30,
        op: '>=', value: 500}
"""
CUSTOMERS = """id: customers
name: Customers
condition: has(profile.behaviour.orders_count) && profile.behaviour.orders_count >= 1
"""
LAPSED = """id: lapsed
name: Lapsed
where:
  all:
    - in_segment: customers
    - not_done: Order Completed
      for_days: 60
"""


def _settings(base: Settings, tmp: Path, files: dict[str, str]) -> SegmenterSettings:
    directory = tmp / "segments"
    directory.mkdir(exist_ok=True)
    for name, body in files.items():
        (directory / f"{name}.yaml").write_text(body)
    return SegmenterSettings.model_validate(
        base.model_dump()
        | {"segments_dir": str(directory), "segmenter_clock_interval_s": 0.05,
           "segmenter_rfm_file": str(directory / "rfm.yaml")}
    )  # fmt: skip


def record(
    pid: str, version: int, at: datetime, event: str = "Order Completed",
    props: dict[str, Any] | None = None, **behaviour: Any,
) -> bytes:  # fmt: skip
    return orjson.dumps(
        {
            "event": {"type": "track", "event": event, "messageId": f"{pid}-{version}",
                      "userId": pid, "timestamp": at.isoformat(), "properties": props or {}},
            "profile": {"profile_id": pid, "version": version, "behaviour": behaviour,
                        "traits": {}, "consent": {}, "updated_at": at.isoformat()},
        }
    )  # fmt: skip


def changes(records: list[Any], pid: str) -> list[tuple[str, str]]:
    out = []
    for r in records:
        body = orjson.loads(r.value)
        if body["profile_id"] == pid:
            out.append((body["segment_id"], body["change"]))
    return out


async def test_crossing_a_threshold_enters_once_and_redelivery_publishes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    config = _settings(settings, tmp_path, {"big": BIG_SPENDERS, "monthly": MONTHLY})
    clock = ManualClock(START + timedelta(days=1))
    pid = f"p-{uuid.uuid4().hex[:8]}"
    first = [
        record(pid, 1, START, props={"revenue": 300.0}, total_revenue=300.0),
        record(pid, 2, START, props={"revenue": 250.0}, total_revenue=550.0),
    ]
    marker = record(pid, 3, START, event="Order Refunded", total_revenue=100.0)
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(
        create_app(config, clock)
    ) as client:  # fmt: skip
        await produce(config, PROFILE_EVENTS, first, key=pid.encode())
        entered = changes(await topic.read(2), pid)
        assert sorted(entered) == [("big-spenders", "entered"), ("monthly-500", "entered")]

        # Redelivery of both records, then an event that makes the profile leave: the only
        # change after the entries is that exit.
        await produce(config, PROFILE_EVENTS, [*first, marker], key=pid.encode())
        after = changes(await topic.read(1), pid)
        assert after == [("big-spenders", "exited")]

        history = (await client.get(f"/v1/profiles/{pid}/segments", headers=OPS)).json()
        assert [s["segment_id"] for s in history["segments"]] == ["monthly-500"]
        # Newest first; the two entries of one batch in the order the segments were decided.
        assert [(h["segment_id"], h["change"]) for h in history["history"]] == [
            ("big-spenders", "exited"), ("monthly-500", "entered"), ("big-spenders", "entered"),
        ]  # fmt: skip

        listed = (await client.get("/v1/segments", headers=OPS)).json()
        sizes = {s["id"]: s["size"] for s in listed["segments"]}
        assert sizes["monthly-500"] == 1
        assert sizes["big-spenders"] == 0
        assert "rfm-champions" in sizes

        page = (await client.get("/v1/segments/monthly-500/members?limit=1", headers=OPS)).json()
        assert [m["profile_id"] for m in page["items"]] == [pid]

        draft = "id: draft\nname: D\ncondition: profile.behaviour.total_revenue < 200.0\n"
        preview = (await client.post("/v1/segments/preview", json=draft, headers=OPS)).json()
        assert preview["size"] == 1
        assert preview["sample"] == [pid]
        bad = await client.post("/v1/segments/preview", json={"id": "x", "name": "x"}, headers=OPS)
        assert bad.status_code == 400
        nul = await client.get("/v1/profiles/a%00b/segments", headers=OPS)
        assert nul.status_code == 400
        nul = await client.post("/v1/segments/preview", json=draft + "\x00", headers=OPS)
        assert nul.status_code == 400

        made = await client.put(
            "/v1/segments/small-spenders",
            json={"name": "Small", "condition": "profile.behaviour.total_revenue < 200.0"},
            headers=OPS,
        )
        assert made.json() == {"id": "small-spenders", "enabled": True}
        taken = await client.put("/v1/segments/big-spenders", json=draft, headers=OPS)
        assert taken.status_code == 409

        off = await client.post("/v1/segments/monthly-500/disable", headers=OPS)
        assert off.json() == {"id": "monthly-500", "enabled": False}
        listed = (await client.get("/v1/segments", headers=OPS)).json()
        assert {s["id"]: s["enabled"] for s in listed["segments"]}["monthly-500"] is False


async def test_a_time_based_segment_moves_a_customer_with_no_new_event(
    settings: Settings, tmp_path: Path
) -> None:
    config = _settings(settings, tmp_path, {"customers": CUSTOMERS, "lapsed": LAPSED})
    clock = ManualClock(START)
    pid = f"t-{uuid.uuid4().hex[:8]}"
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(create_app(config, clock)):
        await produce(
            config, PROFILE_EVENTS, [record(pid, 1, START, orders_count=1)], key=pid.encode()
        )
        assert changes(await topic.read(1), pid) == [("customers", "entered")]

        clock.advance(timedelta(days=59))
        clock.advance(timedelta(days=1, seconds=1))  # 60 days and a second after the order
        assert changes(await topic.read(1), pid) == [("lapsed", "entered")]

        # An order brings the customer back at once, and re-arms the timer.
        back = START + timedelta(days=61)
        clock.set(back)
        await produce(
            config, PROFILE_EVENTS, [record(pid, 2, back, orders_count=2)], key=pid.encode()
        )
        assert changes(await topic.read(1), pid) == [("lapsed", "exited")]
        engine = create_async_engine(config.database_url)
        async with engine.connect() as conn:
            due = await conn.scalar(
                text("SELECT due_at FROM segmenter.segment_timers WHERE profile_id = :p"),
                {"p": pid},
            )
        await engine.dispose()
        assert due == back + timedelta(days=60)


async def test_merges_move_membership_and_erasures_drop_it(
    settings: Settings, tmp_path: Path
) -> None:
    config = _settings(settings, tmp_path, {"big": BIG_SPENDERS, "monthly": MONTHLY})
    clock = ManualClock(START + timedelta(days=1))
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(
        create_app(config, clock)
    ) as client:  # fmt: skip
        await produce(
            config,
            PROFILE_EVENTS,
            [record(a, 1, START, props={"revenue": 400.0}, total_revenue=400.0)],
            key=a.encode(),
        )
        await produce(
            config,
            PROFILE_EVENTS,
            [record(b, 1, START, props={"revenue": 200.0}, total_revenue=200.0)],
            key=b.encode(),
        )

        engine = create_async_engine(config.database_url)

        async def settled() -> bool:
            async with engine.connect() as conn:
                known = await conn.scalar(
                    text("SELECT count(*) FROM segmenter.profiles WHERE profile_id IN (:a, :b)"),
                    {"a": a, "b": b},
                )
            return bool(known == 2)

        await eventually(settled, what="both profiles applied")
        merged = record(b, 2, START, event=PROFILE_MERGED, total_revenue=600.0,
                        props={"merged_profile_id": a, "into_profile_id": b})  # fmt: skip
        await produce(config, PROFILE_EVENTS, [merged], key=b.encode())
        got = changes(await topic.read(2), b)
        # B now holds A's order facts: 600 in 30 days, and the snapshot's 600 total.
        assert sorted(got) == [("big-spenders", "entered"), ("monthly-500", "entered")]
        gone = (await client.get(f"/v1/profiles/{a}/segments", headers=OPS)).json()
        assert gone["segments"] == []

        erased = orjson.loads(record(b, ERASED_VERSION, START, event=PROFILE_ERASED,
                                     props={"profile_id": b}))  # fmt: skip
        erased["profile"]["traits"] = {"erased": True}
        await produce(config, PROFILE_EVENTS, [orjson.dumps(erased)], key=b.encode())

        async def dropped() -> bool:
            found = (await client.get(f"/v1/profiles/{b}/segments", headers=OPS)).json()
            return bool(found["segments"] == [] and found["history"] == [])

        await eventually(dropped, what="the erasure")
        # A late snapshot of the erased customer does not bring them back.
        late = record(b, 3, START, props={"revenue": 900.0}, total_revenue=900.0)
        await produce(config, PROFILE_EVENTS, [late], key=b.encode())
        await eventually(settled, what="the late snapshot")  # a and the tombstone of b
        async with engine.connect() as conn:
            version = await conn.scalar(
                text("SELECT version FROM segmenter.profiles WHERE profile_id = :b"), {"b": b}
            )
        await engine.dispose()
        assert version == ERASED_VERSION


async def test_a_large_batch_decided_in_lanes_enters_each_customer_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Hundreds of customers queued before the segmenter starts reach it as one large batch,
    decided in two lanes at once: each customer enters once, redelivered records change
    nothing, and no customer's records are split between lanes."""
    config = _settings(settings, tmp_path, {"big": BIG_SPENDERS})
    assert config.segmenter_lanes == 2
    run = uuid.uuid4().hex[:6]
    pids = [f"lane-{run}-{i}" for i in range(300)]
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap_servers)
    await producer.start()
    try:
        for pid in pids:  # each customer: an order, then its redelivery
            for _ in range(2):
                value = record(pid, 1, START, props={"revenue": 600.0}, total_revenue=600.0)
                await producer.send(PROFILE_EVENTS, value=value, key=pid.encode())
        await producer.flush()
    finally:
        await producer.stop()
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(
        create_app(config, ManualClock(START + timedelta(days=1)))
    ):  # fmt: skip
        found = [orjson.loads(r.value) for r in await topic.read(len(pids))]  # type: ignore[attr-defined]
        assert sorted(c["profile_id"] for c in found) == sorted(pids)
        assert {(c["segment_id"], c["change"]) for c in found} == {("big-spenders", "entered")}
        later = [orjson.loads(r.value) for r in await topic.read_for(1.0)]  # type: ignore[attr-defined]
        assert [c for c in later if c["profile_id"] in set(pids)] == []
