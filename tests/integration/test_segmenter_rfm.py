"""RFM on a known data set: the quintile scores and named segments match a table computed by
hand, the entries are published as segment changes, and a second run changes nothing."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.segmenter import rfm_repository
from services.segmenter.app import create_app
from services.segmenter.settings import SegmenterSettings
from shared.clock import ManualClock
from shared.cloudevents import binary_headers
from shared.contracts import SegmentChange
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS, SEGMENT_CHANGES
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-write"}
NOW = datetime(2026, 9, 1, tzinfo=UTC)

# customer: (days since last order, orders, money spent in total)
DATA = {
    "a0": (300, 1, 10.0), "a1": (250, 5, 500.0), "a2": (200, 2, 30.0), "a3": (150, 8, 900.0),
    "a4": (100, 1, 50.0), "a5": (80, 3, 120.0), "a6": (60, 6, 300.0), "a7": (30, 2, 20.0),
    "a8": (10, 10, 1000.0), "a9": (2, 1, 15.0),
}  # fmt: skip
# Ten customers, two per quintile. R: oldest last order -> 1. F: fewest orders -> 1 (ties
# broken by id: a0, a4, a9 have one order each). M: least spent -> 1.
EXPECTED = {
    "a0": (1, 1, 1, "rfm-hibernating"),
    "a1": (1, 4, 4, "rfm-at-risk"),
    "a2": (2, 2, 2, "rfm-about-to-sleep"),
    "a3": (2, 5, 5, "rfm-at-risk"),
    "a4": (3, 1, 3, "rfm-about-to-sleep"),
    "a5": (3, 3, 3, "rfm-need-attention"),
    "a6": (4, 4, 4, "rfm-champions"),
    "a7": (4, 3, 2, "rfm-potential-loyalists"),
    "a8": (5, 5, 5, "rfm-champions"),
    "a9": (5, 2, 1, "rfm-potential-loyalists"),
}


def _orders(pid: str, days: int, count: int, money: float) -> list[bytes]:
    out = []
    for n in range(count):
        at = (NOW - timedelta(days=days + count - 1 - n)).isoformat()
        out.append(orjson.dumps({
            "event": {"type": "track", "event": "Order Completed", "messageId": f"{pid}-{n}",
                      "userId": pid, "timestamp": at, "properties": {"revenue": money / count}},
            "profile": {"profile_id": pid, "version": n + 1, "updated_at": at,
                        "behaviour": {"orders_count": n + 1}},
        }))  # fmt: skip
    return out


def _rfm_only(settings: Settings, tmp_path: Path) -> SegmenterSettings:
    """The segmenter with no segment files and the default RFM segments."""
    return SegmenterSettings.model_validate(
        settings.model_dump() | {"segments_dir": str(tmp_path / "none"),
                                 "segmenter_rfm_file": str(tmp_path / "none.yaml")}
    )  # fmt: skip


async def _summarised_orders(
    config: SegmenterSettings, engine: AsyncEngine, ids: dict[str, str]
) -> None:
    """DATA's orders as profile events, waited for until the purchase summary holds them."""
    for name, (days, count, money) in DATA.items():
        await produce(config, PROFILE_EVENTS, _orders(ids[name], days, count, money),
                      key=ids[name].encode())  # fmt: skip

    async def summarised() -> bool:
        async with engine.connect() as conn:
            orders = await conn.scalar(text("SELECT sum(orders_count) FROM segmenter.purchases"))
        return bool(orders == sum(c for _, c, _ in DATA.values()))

    await eventually(summarised, what="every order in the purchase summary")


async def test_rfm_quintiles_match_a_hand_computed_table(
    settings: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    ids = {name: f"{name}-{run}" for name in DATA}
    config = _rfm_only(settings, tmp_path)
    engine = create_async_engine(config.database_url)
    async with TopicReader(config, SEGMENT_CHANGES) as topic, running(
        create_app(config, ManualClock(NOW))
    ) as client:  # fmt: skip
        await _summarised_orders(config, engine, ids)
        figures = (await client.post("/v1/rfm/recompute", headers=OPS)).json()
        assert (figures["profiles"], figures["entered"], figures["exited"]) == (10, 10, 0)

        scores = {}
        for name, pid in ids.items():
            body = (await client.get(f"/v1/profiles/{pid}/segments", headers=OPS)).json()
            rfm = body["rfm"]
            scores[name] = (rfm["recency"], rfm["frequency"], rfm["monetary"], rfm["segment_id"])
            assert [s["segment_id"] for s in body["segments"]] == [rfm["segment_id"]]
        assert scores == EXPECTED

        records = await topic.read(10)
        published = [SegmentChange.model_validate(orjson.loads(r.value))  # type: ignore[attr-defined]
                     for r in records]  # fmt: skip
        traces = set()
        for record, change in zip(records, published, strict=True):
            headers = {k: v.decode() for k, v in record.headers}  # type: ignore[attr-defined]
            assert list(headers) == [k for k, _ in binary_headers(
                event_id="-", event_type="-", source="-", subject="-")]  # fmt: skip
            assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", headers["traceparent"])
            traces.add(headers["traceparent"])
            assert headers["ce_type"] == "journeyman.segment.entered"
            assert headers["ce_subject"] == change.profile_id
            expected_id = f"{change.profile_id}:{change.segment_id}:entered:rfm@"
            assert headers["ce_id"].startswith(expected_id)
        assert len(traces) == 1  # one recompute, one piece of work: one trace
        assert {(c.profile_id, c.segment_id, c.change) for c in published} == {
            (ids[name], expected[3], "entered") for name, expected in EXPECTED.items()
        }
        assert all(c.profile.version >= 1 for c in published)

        again = (await client.post("/v1/rfm/recompute", headers=OPS)).json()
        assert (again["entered"], again["exited"]) == (0, 0)
    await engine.dispose()


async def test_one_recompute_runs_at_a_time(settings: Settings, tmp_path: Path) -> None:
    """While another recompute holds the run lock (another replica's), a request is refused
    with 409; once it is released, the request runs."""
    config = _rfm_only(settings, tmp_path)
    engine = create_async_engine(config.database_url)
    async with running(create_app(config, ManualClock(NOW))) as client:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": rfm_repository.RUN_LOCK}
            )
            busy = await client.post("/v1/rfm/recompute", headers=OPS)
        assert busy.status_code == 409
        assert "already running" in busy.json()["detail"]
        free = await client.post("/v1/rfm/recompute", headers=OPS)
        assert free.status_code == 200, free.text
        assert free.json()["exited"] == 0
    await engine.dispose()


async def test_a_write_racing_the_lanes_makes_the_recompute_run_again(
    settings: Settings, tmp_path: Path
) -> None:
    """The lanes read under repeatable read: a customer's score row updated by someone else
    while a lane waits to rewrite it fails that run (serialization failure). The request still
    answers 200: the recompute runs again and moves the customer."""
    run = uuid.uuid4().hex[:6]
    ids = {name: f"{name}-{run}" for name in DATA}
    config = _rfm_only(settings, tmp_path)
    engine = create_async_engine(config.database_url)
    async with running(create_app(config, ManualClock(NOW))) as client:
        await _summarised_orders(config, engine, ids)
        assert (await client.post("/v1/rfm/recompute", headers=OPS)).status_code == 200
        moved = ids["a9"]  # recent, one order, least spent: give them the most money
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE segmenter.purchases SET monetary = 5000 WHERE profile_id = :p"),
                {"p": moved},
            )
        async with engine.connect() as rival:
            await rival.execute(  # holds the score row the recompute must rewrite
                text("UPDATE segmenter.rfm_scores SET computed_at = now() WHERE profile_id = :p"),
                {"p": moved},
            )
            recompute = asyncio.create_task(client.post("/v1/rfm/recompute", headers=OPS))

            async def waiting() -> bool:
                async with engine.connect() as conn:
                    return bool(await conn.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'UPDATE segmenter.rfm_scores%'"
                    )))  # fmt: skip

            await eventually(waiting, what="a lane waiting on the held score row")
            await rival.commit()  # a concurrent update: the waiting lane cannot serialize
        answer = await recompute
        assert answer.status_code == 200, answer.text
        assert answer.json()["entered"] == 1
        body = (await client.get(f"/v1/profiles/{moved}/segments", headers=OPS)).json()
        assert body["rfm"]["monetary"] == 5
    await engine.dispose()
