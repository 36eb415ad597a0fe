"""The measurement API on the real broker and database: a small known data set sent through
the ingestion API gives the hand-computed KPIs, retention and satisfaction tables, as JSON and
as CSV; bad parameters are 400s naming the field; CLV is fitted from the timeline."""

from __future__ import annotations

import csv
import io
import random
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.profile.app import create_app
from shared.settings import Settings
from tests.helpers import eventually, running

pytestmark = pytest.mark.integration
READ = {"Authorization": "Bearer ops-read"}
WK = ("wk-test", "")
WINDOW = {"since": "2026-01-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}


def _data_set(run: str) -> list[dict[str, Any]]:
    """Five customers over January-March 2026 (a, b, c buy; d refers friends; e browses),
    and f, who only received an email (Journeyman's own `Message Sent`: not activity)."""
    seq = 0

    def msg(user: str, stamp: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"type": "track", "messageId": f"{run}-{seq}", "userId": f"{run}-{user}",
                "timestamp": stamp, **fields}  # fmt: skip

    def order(user: str, stamp: str, revenue: float) -> dict[str, Any]:
        return msg(user, stamp, event="Order Completed", properties={"revenue": revenue})

    def survey(user: str, stamp: str, kind: str, score: int, step: str, **extra: Any) -> Any:
        props = {"survey": kind, "score": score, "journey_id": "post-purchase", "step_id": step}
        return msg(user, stamp, event="Survey Responded", properties={**props, **extra})

    return [
        *[msg(u, "2026-01-02T09:00:00Z", type="identify", traits={"name": u}) for u in "abcd"],
        order("a", "2026-01-10T10:00:00Z", 100), order("a", "2026-02-05T10:00:00Z", 50),
        order("a", "2026-03-03T10:00:00Z", 30),
        msg("a", "2026-02-10T10:00:00Z", event="Order Refunded", properties={"revenue": 20}),
        order("b", "2026-01-20T10:00:00Z", 40), order("b", "2026-03-15T10:00:00Z", 60),
        order("c", "2026-02-01T10:00:00Z", 80),
        msg("d", "2026-01-05T10:00:00Z", event="Referral", properties={"referee": "x"}),
        msg("d", "2026-02-05T10:00:00Z", event="Referral", properties={"referee": "y"}),
        msg("a", "2026-03-05T10:00:00Z", event="Referral", properties={"referee": "z"}),
        msg("e", "2026-03-20T10:00:00Z", type="page", name="Home"),
        msg("f", "2026-03-21T10:00:00Z", event="Message Sent", properties={"channel": "email"}),
        # Outside the window: counted by nothing windowed.
        order("c", "2026-05-01T10:00:00Z", 999),
        # NPS at step ask-nps: 10 in January; 9 and 3 in February. CSAT at ask-csat: 5 and 2.
        # CES at ask-ces: 6 on 1-7 and 3 on 1-5 (= 4 on 1-7).
        survey("a", "2026-01-11T10:00:00Z", "nps", 10, "ask-nps"),
        survey("b", "2026-02-11T10:00:00Z", "nps", 9, "ask-nps"),
        survey("c", "2026-02-12T10:00:00Z", "nps", 3, "ask-nps"),
        survey("a", "2026-02-06T10:00:00Z", "csat", 5, "ask-csat"),
        survey("b", "2026-03-16T10:00:00Z", "csat", 2, "ask-csat"),
        survey("a", "2026-03-04T10:00:00Z", "ces", 6, "ask-ces", scale=7),
        survey("c", "2026-02-02T10:00:00Z", "ces", 3, "ask-ces", scale=5),
    ]  # fmt: skip


async def _seed(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
    assert (await client.post("/v1/batch", json={"batch": batch}, auth=WK)).status_code == 200
    last = batch[-1]["userId"]

    async def landed() -> bool:
        found = await client.get(f"/v1/profiles/user:{last}", headers=READ)
        return found.status_code == 200 and "last_ces_score" in found.json()["behaviour"]

    await eventually(landed, what="the data set to land")


async def test_kpis_retention_and_satisfaction_equal_hand_computed_values(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    async with running(create_app(settings)) as client:
        await _seed(client, _data_set(run))

        kpis = (await client.get("/v1/analytics/kpis", params=WINDOW, headers=READ)).json()
        assert kpis["kpis"] == {
            "customers": 5,  # a-e; f only received a message
            "buyers": 3,
            "orders": 6,
            "revenue": 360.0,  # 100 + 50 + 30 + 40 + 60 + 80
            "refunded": 20.0,
            "repeat_purchase_rate": 0.6667,  # a and b of a, b, c
            "average_basket": 60.0,  # 360 / 6
            "purchase_frequency": 2.0,  # 6 / 3
            "historical_clv": 113.33,  # (360 - 20) / 3
            "referrals": 3,
            "referral_rate": 0.4,  # d and a of 5
        }
        # Ordering customers per month: Jan {a, b}, Feb {a, c}, Mar {a, b}.
        assert [(p["period"][:7], p["active"], p["previous_active"], p["retained"],
                 p["retention_rate"], p["churn_rate"]) for p in kpis["retention"]] == [
            ("2026-01", 2, 0, 0, None, None),
            ("2026-02", 2, 2, 1, 0.5, 0.5),
            ("2026-03", 2, 2, 1, 0.5, 0.5),
        ]  # fmt: skip
        # Any own event counts as activity: Jan {a, b, c, d}, Feb {a, b, c, d}, Mar {a, b, e}.
        engaged = await client.get(
            "/v1/analytics/retention", params={**WINDOW, "active_on": "event"}, headers=READ
        )
        assert [(p["active"], p["retained"]) for p in engaged.json()["retention"]] == [
            (4, 0), (4, 4), (3, 2),
        ]  # fmt: skip

        overall = (await client.get("/v1/analytics/satisfaction", headers=READ)).json()
        [group] = overall["groups"]
        assert (group["nps"]["responses"], group["nps"]["score"]) == (3, 33.33)  # (2 - 1) / 3
        assert (group["csat"]["responses"], group["csat"]["score"]) == (2, 50.0)
        assert (group["csat"]["mean"], group["ces"]["mean"]) == (3.5, 5.0)  # (6 + 4) / 2

        monthly = await client.get(
            "/v1/analytics/satisfaction", params={"group_by": "month"}, headers=READ
        )
        by_month = {g["period"][:7]: g for g in monthly.json()["groups"]}
        assert by_month["2026-01"]["nps"]["score"] == 100.0
        assert by_month["2026-02"]["nps"]["score"] == 0.0  # one promoter, one detractor
        assert by_month["2026-03"]["csat"]["score"] == 0.0

        steps = await client.get(
            "/v1/analytics/satisfaction", params={"group_by": "touchpoint"}, headers=READ
        )
        by_step = {g["step_id"]: g for g in steps.json()["groups"]}
        assert by_step["ask-nps"]["nps"]["responses"] == 3
        assert by_step["ask-nps"]["csat"]["responses"] == 0
        assert by_step["ask-csat"]["journey_id"] == "post-purchase"

        # CSV, by query parameter or by Accept header.
        as_csv = await client.get("/v1/analytics/kpis", params={**WINDOW, "format": "csv"},
                                  headers=READ)  # fmt: skip
        assert as_csv.headers["content-type"].startswith("text/csv")
        table = {r["metric"]: r["value"] for r in csv.DictReader(io.StringIO(as_csv.text))}
        assert table["average_basket"] == "60.0"
        accepted = await client.get(
            "/v1/analytics/satisfaction", params={"group_by": "touchpoint"},
            headers={**READ, "Accept": "text/csv"},
        )  # fmt: skip
        rows = list(csv.DictReader(io.StringIO(accepted.text)))
        nps_row = next(r for r in rows if r["step_id"] == "ask-nps" and r["survey"] == "nps")
        assert (nps_row["promoters"], nps_row["detractors"], nps_row["score"]) == (
            "2",
            "1",
            "33.33",
        )


async def test_satisfaction_per_segment_reads_the_segmenters_membership(
    settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    async with running(create_app(settings)) as client:
        await _seed(client, _data_set(run))
        ids = {}
        for user in "abc":
            found = await client.get(f"/v1/profiles/user:{run}-{user}", headers=READ)
            ids[user] = found.json()["profile_id"]
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as conn:  # what the segmenter would hold
                for user, segment in (("a", "vip"), ("b", "vip"), ("c", "at-risk")):
                    await conn.execute(
                        text("INSERT INTO segmenter.memberships (profile_id, segment_id, "
                             "profile_version) VALUES (:p, :s, 1)"),
                        {"p": ids[user], "s": segment},
                    )  # fmt: skip
        finally:
            await engine.dispose()
        answer = await client.get(
            "/v1/analytics/satisfaction", params={"group_by": "segment"}, headers=READ
        )
        by_segment = {g["segment_id"]: g for g in answer.json()["groups"]}
        assert by_segment["vip"]["nps"]["score"] == 100.0  # a 10, b 9
        assert by_segment["at-risk"]["nps"]["score"] == -100.0  # c 3


async def test_bad_parameters_and_missing_keys(settings: Settings) -> None:
    async with running(create_app(settings)) as client:
        bad = await client.get("/v1/analytics/satisfaction", params={"group_by": "planet"},
                               headers=READ)  # fmt: skip
        assert bad.status_code == 400
        assert "group_by" in bad.json()["message"]
        since = await client.get("/v1/analytics/kpis", params={"since": "yesterday"}, headers=READ)
        assert since.status_code == 400
        assert "since" in since.json()["message"]
        assert (await client.get("/v1/analytics/kpis")).status_code == 401
        few = await client.get("/v1/analytics/clv", headers=READ)
        assert few.status_code == 409
        assert "orders:" in few.json()["detail"]


async def test_predictive_clv_is_fitted_on_the_timeline(settings: Settings) -> None:
    rng = random.Random(5)
    run = uuid.uuid4().hex[:8]
    batch = []
    for i in range(60):
        day = rng.randint(1, 60)
        for n in range(1 + (i % 4)):
            stamp = f"2026-{1 + (day + 20 * n) // 28 % 9:02d}-{1 + (day + 20 * n) % 28:02d}"
            batch.append({"type": "track", "messageId": f"{run}-{i}-{n}", "userId": f"{run}-{i}",
                          "event": "Order Completed", "timestamp": f"{stamp}T12:00:00Z",
                          "properties": {"revenue": round(rng.uniform(20, 80), 2)}})  # fmt: skip
    batch.append({"type": "identify", "messageId": f"{run}-last", "userId": f"{run}-last",
                  "timestamp": "2026-10-01T00:00:00Z", "traits": {}})  # fmt: skip
    async with running(create_app(settings)) as client:
        assert (await client.post("/v1/batch", json={"batch": batch}, auth=WK)).status_code == 200

        async def landed() -> bool:
            found = await client.get(f"/v1/profiles/user:{run}-last", headers=READ)
            return found.status_code == 200

        await eventually(landed, what="the orders to land")
        body = (await client.get("/v1/analytics/clv", headers=READ)).json()
        assert body["customers"] == 60
        assert body["parameters"]["bgnbd"]["r"] > 0
        assert body["parameters"]["gamma_gamma"] is not None
        assert body["predicted_clv_mean"] > 0
