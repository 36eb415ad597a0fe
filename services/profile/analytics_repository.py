"""Set-based SQL behind the measurement API: every figure is one aggregate query over the
profile timeline, never a loop over customers in Python. Results are histograms and counts
that the pure modules (`satisfaction`, `kpis`, `clv`) turn into scores.

What counts as a customer's own activity: every timeline event except the message lifecycle
events Journeyman itself records (`Message Sent`, `Message Opened`, ...) and profile
bookkeeping (`Profile Merged`): receiving an email does not make a customer active.
"""

# ruff: noqa: S608  (only constant names and whitelisted SQL keywords are interpolated; every
# value is a bind parameter)
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.kpis import Period, PeriodActivity, Totals
from services.profile.repository import pg

S = "profile"
Grouping = Literal["overall", "day", "week", "month", "journey", "touchpoint", "segment"]
GROUPINGS: tuple[Grouping, ...] = (
    "overall", "day", "week", "month", "journey", "touchpoint", "segment",
)  # fmt: skip
STEP = {"day": "1 day", "week": "1 week", "month": "1 month", "quarter": "3 months"}
SURVEY_EVENT = "Survey Responded"

WINDOW = "($1::timestamptz IS NULL OR t.timestamp >= $1) AND ($2::timestamptz IS NULL OR t.timestamp < $2)"  # fmt: skip  # noqa: E501
OWN_ACTIVITY = "t.event IS DISTINCT FROM 'Profile Merged' AND coalesce(t.event, '') NOT LIKE 'Message %'"  # fmt: skip  # noqa: E501
# The order value rule of `behaviour._order_value`: revenue, else total, else value, else 0.
ORDER_VALUE = (
    "CASE WHEN jsonb_typeof(t.payload->'properties'->'revenue') = 'number' "
    "THEN (t.payload->'properties'->>'revenue')::float8 "
    "WHEN jsonb_typeof(t.payload->'properties'->'total') = 'number' "
    "THEN (t.payload->'properties'->>'total')::float8 "
    "WHEN jsonb_typeof(t.payload->'properties'->'value') = 'number' "
    "THEN (t.payload->'properties'->>'value')::float8 ELSE 0 END"
)


class SegmentsUnavailable(RuntimeError):
    """The segmenter's tables are not in this database."""


@dataclass(frozen=True)
class SurveyCount:
    group: dict[str, Any]
    survey: str
    scale: int | None
    score: float
    count: int


_GROUP_SQL: dict[str, tuple[str, list[str]]] = {
    "overall": ("", []),
    "day": ("date_trunc('day', t.timestamp AT TIME ZONE 'UTC') AS period", ["period"]),
    "week": ("date_trunc('week', t.timestamp AT TIME ZONE 'UTC') AS period", ["period"]),
    "month": ("date_trunc('month', t.timestamp AT TIME ZONE 'UTC') AS period", ["period"]),
    "journey": ("t.payload->'properties'->>'journey_id' AS journey_id", ["journey_id"]),
    "touchpoint": (
        "t.payload->'properties'->>'journey_id' AS journey_id, "
        "t.payload->'properties'->>'step_id' AS step_id",
        ["journey_id", "step_id"],
    ),
    "segment": ("m.segment_id AS segment_id", ["segment_id"]),
}


def _value(value: Any) -> Any:
    return value.replace(tzinfo=UTC).isoformat() if isinstance(value, datetime) else value


async def survey_histogram(
    conn: AsyncConnection, group_by: Grouping, since: datetime | None, until: datetime | None
) -> list[SurveyCount]:
    """How many answers gave each score, per survey (and scale) and group. Per segment uses
    today's membership (the segmenter's table, read-only), not membership when answering."""
    columns, names = _GROUP_SQL[group_by]
    join = ""
    if group_by == "segment":
        if not await _segmenter_present(conn):
            raise SegmentsUnavailable("segment membership is not in this database")
        join = "JOIN segmenter.memberships m ON m.profile_id = t.profile_id"
    select = f"{columns}, " if columns else ""
    keys = ", ".join([*names, "survey", "scale", "score"])
    rows = await (await pg(conn)).fetch(
        f"SELECT {select}t.payload->'properties'->>'survey' AS survey, "
        "CASE WHEN jsonb_typeof(t.payload->'properties'->'scale') = 'number' "
        "THEN (t.payload->'properties'->>'scale')::int END AS scale, "
        "(t.payload->'properties'->>'score')::float8 AS score, count(*) AS n "
        f"FROM {S}.timeline t {join} "
        f"WHERE t.event = '{SURVEY_EVENT}' AND {WINDOW} "
        "AND jsonb_typeof(t.payload->'properties'->'score') = 'number' "
        "AND t.payload->'properties'->>'survey' IN ('nps', 'csat', 'ces') "
        f"GROUP BY {keys} ORDER BY {keys}",
        since,
        until,
    )
    return [
        SurveyCount({n: _value(r[n]) for n in names}, r["survey"], r["scale"], r["score"], r["n"])
        for r in rows
    ]


async def _segmenter_present(conn: AsyncConnection) -> bool:
    found = await (await pg(conn)).fetchval("SELECT to_regclass('segmenter.memberships')")
    return found is not None


async def totals(conn: AsyncConnection, since: datetime | None, until: datetime | None) -> Totals:
    row = await (await pg(conn)).fetchrow(
        f"WITH w AS (SELECT t.profile_id, t.event, {ORDER_VALUE} AS v FROM {S}.timeline t "
        f"WHERE {WINDOW} AND {OWN_ACTIVITY}), "
        "orders AS (SELECT profile_id, v FROM w WHERE event = 'Order Completed'), "
        "per AS (SELECT profile_id, count(*) AS n FROM orders GROUP BY 1) "
        "SELECT (SELECT count(DISTINCT profile_id) FROM w) AS customers, "
        "(SELECT count(*) FROM per) AS buyers, "
        "(SELECT count(*) FROM per WHERE n >= 2) AS repeat_buyers, "
        "(SELECT count(*) FROM orders) AS orders, "
        "(SELECT coalesce(sum(v), 0) FROM orders) AS revenue, "
        "(SELECT coalesce(sum(v), 0) FROM w WHERE event = 'Order Refunded') AS refunded, "
        "(SELECT count(DISTINCT profile_id) FROM w WHERE event = 'Referral') AS referrers, "
        "(SELECT count(*) FROM w WHERE event = 'Referral') AS referrals",
        since,
        until,
    )
    assert row is not None
    return Totals(**dict(row))


async def activity(
    conn: AsyncConnection,
    period: Period,
    active_on: str,
    since: datetime | None,
    until: datetime | None,
) -> list[PeriodActivity]:
    """Active customers per period and how many of them were active the period before."""
    unit, step = period, STEP[period]
    what = "t.event = 'Order Completed'" if active_on == "order" else OWN_ACTIVITY
    rows = await (await pg(conn)).fetch(
        f"WITH act AS (SELECT DISTINCT t.profile_id, "
        f"date_trunc('{unit}', t.timestamp AT TIME ZONE 'UTC') AS period "
        f"FROM {S}.timeline t WHERE {WINDOW} AND {what}), "
        f"periods AS (SELECT generate_series(min(period), max(period), interval '{step}') "
        "AS period FROM act), "
        "counts AS (SELECT period, count(*) AS n FROM act GROUP BY 1), "
        "kept AS (SELECT a.period, count(*) AS n FROM act a JOIN act b "
        f"ON b.profile_id = a.profile_id AND b.period = a.period - interval '{step}' "
        "GROUP BY 1) "
        "SELECT p.period, coalesce(c.n, 0) AS active, coalesce(prev.n, 0) AS previous_active, "
        "coalesce(k.n, 0) AS retained FROM periods p "
        "LEFT JOIN counts c ON c.period = p.period "
        f"LEFT JOIN counts prev ON prev.period = p.period - interval '{step}' "
        "LEFT JOIN kept k ON k.period = p.period ORDER BY p.period",
        since,
        until,
    )
    return [
        PeriodActivity(
            r["period"].replace(tzinfo=UTC), r["active"], r["previous_active"], r["retained"]
        )
        for r in rows
    ]


@dataclass(frozen=True)
class PurchaseHistories:
    """Per buyer, as arrays in one order: what BG/NBD and Gamma-Gamma are fitted on."""

    frequency: np.ndarray[Any, np.dtype[np.float64]]
    recency_days: np.ndarray[Any, np.dtype[np.float64]]
    age_days: np.ndarray[Any, np.dtype[np.float64]]
    monetary: np.ndarray[Any, np.dtype[np.float64]]


async def purchase_histories(conn: AsyncConnection, as_of: datetime) -> PurchaseHistories:
    """Repeat orders, days first-to-last order, days since the first order, and the mean value
    of the repeat orders (the first order is left out, as Gamma-Gamma expects), for every
    buyer, aggregated in the database and returned as four arrays in one row."""
    row = await (await pg(conn)).fetchrow(
        f"WITH o AS (SELECT t.profile_id, t.timestamp, {ORDER_VALUE} AS v FROM {S}.timeline t "
        "WHERE t.event = 'Order Completed' AND t.timestamp <= $1), "
        "per AS (SELECT profile_id, count(*) - 1 AS x, "
        "extract(epoch FROM max(timestamp) - min(timestamp)) / 86400 AS tx, "
        "extract(epoch FROM $1 - min(timestamp)) / 86400 AS age, "
        "coalesce((sum(v) - (array_agg(v ORDER BY timestamp))[1]) / nullif(count(*) - 1, 0), 0)"
        " AS m FROM o GROUP BY profile_id) "
        "SELECT coalesce(array_agg(x::float8), '{}') AS x, "
        "coalesce(array_agg(tx::float8), '{}') AS tx, "
        "coalesce(array_agg(age::float8), '{}') AS age, "
        "coalesce(array_agg(m::float8), '{}') AS m FROM per",
        as_of,
    )
    assert row is not None
    arrays = [np.asarray(row[k], dtype=np.float64) for k in ("x", "tx", "age", "m")]
    return PurchaseHistories(*arrays)
