"""What each console page shows, gathered from the measurement use cases, the profile tables
and the other services' APIs. Every panel is fetched on its own: a service that does not answer
turns its panel into an "unavailable" notice and the rest of the page still renders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.profile import analytics, journey_report, repository
from services.profile.analytics_repository import SegmentsUnavailable
from services.profile.clv import NotEnoughData
from services.profile.console import charts, graph
from services.profile.kpis import Definitions
from services.profile.service_clients import DeadLetterCounter, ServiceClients, ServiceUnavailable
from services.profile.traits import normalise_identifier

CHANNEL_SERIES = ("sent", "delivered", "opened", "clicked")


@dataclass(frozen=True)
class Panel:
    """A panel's data, or why it is unavailable."""

    data: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def panel(work: Awaitable[Any]) -> Panel:
    try:
        return Panel(await work)
    except ServiceUnavailable as exc:
        return Panel(error=str(exc))
    except NotEnoughData as exc:
        return Panel(error=str(exc))
    except (TimeoutError, OSError) as exc:  # the broker, for the dead-letter count
        return Panel(error=f"unavailable: {type(exc).__name__}")


def _label(iso: str, period: str) -> str:
    return iso[:7] if period == "month" else iso[:10]


async def kpis_page(
    engine: AsyncEngine, dead: DeadLetterCounter, now: datetime, definitions: Definitions
) -> dict[str, Any]:
    async with engine.connect() as conn:
        report = await analytics.kpi_report(conn, definitions, None, None)
        clv = await panel(analytics.clv_report(conn, now, 365))
    series = report["retention"]
    per = definitions.period
    labels = [_label(p["period"], per) for p in series]
    retention_chart = charts.line_chart(
        "retention", f"Retention and churn per {per} (%)", labels,
        [("retention %", [None if p["retention_rate"] is None else 100 * p["retention_rate"]
                          for p in series]),
         ("churn %", [None if p["churn_rate"] is None else 100 * p["churn_rate"]
                      for p in series])],
        y_min=0, y_max=100,
    )  # fmt: skip
    active_chart = charts.bar_chart(
        "active", f"Active customers per {per}", labels,
        [("active", [p["active"] for p in series]), ("retained", [p["retained"] for p in series])],
    )  # fmt: skip
    return {
        "report": report,
        "definitions": definitions,
        "kpis": report["kpis"],
        "retention_chart": retention_chart,
        "active_chart": active_chart,
        "clv": clv,
        "dead_letters": await panel(dead.count()),
    }


async def satisfaction_page(engine: AsyncEngine, period: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        over_time = await analytics.satisfaction_report(conn, period, None, None)  # type: ignore[arg-type]
        overall = await analytics.satisfaction_report(conn, "overall", None, None)
        touchpoints = await analytics.satisfaction_report(conn, "touchpoint", None, None)
        try:
            segments = Panel(await analytics.satisfaction_report(conn, "segment", None, None))
        except SegmentsUnavailable as exc:
            segments = Panel(error=str(exc))
    groups = sorted(over_time["groups"], key=lambda g: g["period"])
    labels = [_label(g["period"], period) for g in groups]
    score_chart = charts.line_chart(
        "satisfaction", "NPS and CSAT % over time", labels,
        [("NPS", [g["nps"]["score"] for g in groups]),
         ("CSAT %", [g["csat"]["score"] for g in groups])],
        y_min=-100, y_max=100,
    )  # fmt: skip
    ces_chart = charts.line_chart(
        "ces", "CES mean over time (1-7)", labels, [("CES", [g["ces"]["mean"] for g in groups])],
        y_min=1, y_max=7,
    )  # fmt: skip
    responses_chart = charts.bar_chart(
        "responses", "Responses per period", labels,
        [(s.upper(), [g[s]["responses"] for g in groups]) for s in ("nps", "csat", "ces")],
    )  # fmt: skip
    return {
        "period": period,
        "overall": overall["groups"][0] if overall["groups"] else None,
        "score_chart": score_chart,
        "ces_chart": ces_chart,
        "responses_chart": responses_chart,
        "touchpoints": touchpoints["groups"],
        "segments": segments,
    }


async def journeys_page(clients: ServiceClients) -> dict[str, Any]:
    return {"journeys": await panel(clients.journeys())}


async def journey_page(clients: ServiceClients, journey_id: str) -> dict[str, Any]:
    stats = await panel(clients.journey_stats(journey_id))
    messages = await panel(clients.message_stats(journey_id=journey_id))
    out: dict[str, Any] = {"journey_id": journey_id, "stats": stats, "messages": messages}
    if stats.ok:
        report = journey_report.journey_report(stats.data, messages.data if messages.ok else None)
        out["report"] = report
        out["graph"] = graph.journey_svg(stats.data)
        steps = report["funnel"]
        out["funnel_chart"] = charts.bar_chart(
            "funnel", "Customers per step", [str(s.get("step_id")) for s in steps],
            [(k, [s.get(k, 0) for s in steps]) for k in ("entered", "exited", "converted")],
        )  # fmt: skip
    return out


async def channels_page(clients: ServiceClients, bucket: str) -> dict[str, Any]:
    stats = await panel(clients.message_stats(bucket=bucket))
    out: dict[str, Any] = {"stats": stats, "bucket": bucket}
    if stats.ok:
        totals = {
            c: journey_report.message_rates(v) for c, v in stats.data.get("totals", {}).items()
        }
        out["totals"] = totals
        channels = sorted(totals)
        out["totals_chart"] = charts.bar_chart(
            "channel-totals", "Messages per channel", channels,
            [(k, [totals[c][k] for c in channels]) for k in CHANNEL_SERIES],
        )  # fmt: skip
        series = stats.data.get("series", [])
        buckets = sorted({str(r["bucket"]) for r in series})
        sent = {(str(r["bucket"]), r["channel"]): r.get("sent", 0) for r in series}
        out["series_chart"] = charts.line_chart(
            "channel-series", "Messages sent over time", [b[:13] if bucket == "hour" else b[:10]
                                                          for b in buckets],
            [(c, [sent.get((b, c)) for b in buckets]) for c in channels],
        )  # fmt: skip
    return out


def candidates(query: str) -> list[str]:
    """What a person may type: a profile id, an identity, a user id, an email address."""
    query = query.strip()
    if ":" in query:
        return [normalise_identifier(query)]
    found = [query, f"user:{query}"]
    if "@" in query:
        found.append(normalise_identifier(f"email:{query}"))
    return found


async def customer_page(engine: AsyncEngine, clients: ServiceClients, query: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        state = None
        for identifier in candidates(query):
            state = await repository.get_profile(conn, identifier)
            if state is not None:
                break
        if state is None:
            return {"query": query, "found": False}
        history = await repository.consent_history(conn, state.profile_id)
        timeline = await repository.get_timeline(
            conn, state.profile_id, since=None, until=None, types=[], events=[], after=None,
            limit=50,
        )  # fmt: skip
    segments, journeys = await asyncio.gather(
        panel(clients.profile_segments(state.profile_id)),
        panel(clients.profile_journeys(state.profile_id)),
    )
    return {
        "query": query,
        "found": True,
        "profile": state,
        "consent_history": history,
        "timeline": timeline,
        "segments": segments,
        "journeys": journeys,
        "now": datetime.now(UTC),
    }
