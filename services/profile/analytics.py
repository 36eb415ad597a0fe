"""Measurement use cases: ask the analytics repository for counts, let the pure modules turn
them into figures, and shape the answer (one JSON document, or flat rows for CSV)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile import analytics_repository as repo
from services.profile import clv, kpis, satisfaction


def _key(group: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(group.items())


async def satisfaction_report(
    conn: AsyncConnection,
    group_by: repo.Grouping,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """NPS, CSAT and CES with response counts for every group that has answers."""
    histograms: dict[tuple[tuple[str, Any], ...], dict[str, dict[float, int]]] = defaultdict(
        lambda: {s: defaultdict(int) for s in satisfaction.SURVEYS}
    )
    for row in await repo.survey_histogram(conn, group_by, since, until):
        score = row.score
        if row.survey == satisfaction.CES:
            if not satisfaction.in_scale(satisfaction.CES, score, row.scale):
                score = -1  # off its scale: counted as ignored
            else:
                score = satisfaction.ces_on_seven(score, row.scale)
        histograms[_key(row.group)][row.survey][score] += row.count
    groups = []
    for key, by_survey in histograms.items():
        scores = {s: satisfaction.score(s, h).as_dict() for s, h in by_survey.items()}
        groups.append({**dict(key), **scores})
    return {"group_by": group_by, "since": since, "until": until, "groups": groups}


def satisfaction_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group and survey (CSV)."""
    rows = []
    for group in report["groups"]:
        keys = {k: v for k, v in group.items() if k not in satisfaction.SURVEYS}
        for survey in satisfaction.SURVEYS:
            rows.append({**keys, **group[survey]})
    return rows


async def kpi_report(
    conn: AsyncConnection,
    definitions: kpis.Definitions,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    totals = await repo.totals(conn, since, until)
    series = await repo.activity(conn, definitions.period, definitions.active_on, since, until)
    return {
        "definitions": {"period": definitions.period, "active_on": definitions.active_on},
        "since": since,
        "until": until,
        "kpis": kpis.customer_kpis(totals),
        "retention": kpis.retention(series),
    }


def kpi_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"metric": k, "value": v} for k, v in report["kpis"].items()]


async def clv_report(conn: AsyncConnection, as_of: datetime, horizon_days: float) -> dict[str, Any]:
    """Predicted value per buyer over the horizon; refused (NotEnoughData) on too few buyers."""
    h = await repo.purchase_histories(conn, as_of)
    # The fit is CPU work (seconds on a large shop): off the event loop, so the service's
    # consumer and other requests keep going meanwhile.
    result = await asyncio.to_thread(
        clv.forecast, h.frequency, h.recency_days, h.age_days, h.monetary, horizon_days
    )
    return {"as_of": as_of, **result.summary()}
