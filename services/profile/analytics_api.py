"""Measurement API (read key): satisfaction, customer KPIs and retention, predictive CLV,
journey reports with holdout uplift, channel performance. Every route answers JSON, or CSV with
`?format=csv` or `Accept: text/csv`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from services.profile import analytics, journey_report
from services.profile import analytics_repository as repo
from services.profile.clv import NotEnoughData
from services.profile.kpis import ActiveOn, Definitions, Period
from services.profile.service_clients import ServiceClients, ServiceUnavailable
from services.profile.tabular import to_csv, wants_csv
from shared.auth import require_scope
from shared.codec import dumps
from shared.runtime import Runtime
from shared.settings import Settings

Format = Annotated[Literal["json", "csv"] | None, Query(description="json (default) or csv")]
Since = Annotated[datetime | None, Query(description="from this time (inclusive)")]
Until = Annotated[datetime | None, Query(description="up to this time (exclusive)")]
Clock = Callable[[], datetime]


_ERROR: dict[str, Any] = {"content": {"application/json": {"schema": {"type": "object"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}},
                      "text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV with ?format=csv or Accept: text/csv"},
}  # fmt: skip


def _utc(moment: datetime | None, field: str = "since") -> datetime | None:
    """A time as UTC (naive means UTC); one PostgreSQL cannot hold is a 400 naming the field."""
    if moment is None:
        return None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:
        raise HTTPException(400, f"{field}: out of range") from exc
    return moment


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def clients(request: Request) -> ServiceClients:
    found: ServiceClients = _runtime(request).state["service_clients"]
    return found


def answer(
    request: Request, body: dict[str, Any], rows: list[dict[str, Any]], format_: str | None,
    name: str,
) -> Response:  # fmt: skip
    """JSON, or the rows as CSV when asked for."""
    if wants_csv(format_, request.headers.get("accept")):
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(dumps(body), media_type="application/json")


def unavailable(exc: ServiceUnavailable) -> dict[str, str]:
    """What a partial answer says about the service that did not answer: like the console,
    the API degrades to what it has rather than failing (a 5xx would make clients retry a
    request that only another service can fix)."""
    return {exc.service: str(exc)}


def build_analytics_router(settings: Settings, clock: Clock | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1/analytics", tags=["measurement"])
    read = [Depends(require_scope(settings, "read"))]
    now = clock or (lambda: datetime.now(UTC))

    @router.get(
        "/satisfaction", dependencies=read,
        responses={**RESPONSES, 409: {"description": "No segment membership here", **_ERROR}},
    )  # fmt: skip
    async def satisfaction(
        request: Request,
        group_by: Annotated[repo.Grouping, Query(description="how to group answers")] = "overall",
        since: Since = None,
        until: Until = None,
        format: Format = None,
    ) -> Response:
        """NPS, CSAT and CES with response counts: overall, per day/week/month, per journey,
        per touchpoint (journey step) or per segment (today's membership)."""
        try:
            async with _runtime(request).engine.connect() as conn:
                body = await analytics.satisfaction_report(conn, group_by, _utc(since),
                                                           _utc(until, "until"))  # fmt: skip
        except repo.SegmentsUnavailable as exc:
            raise HTTPException(409, f"group_by: {exc}") from exc
        rows = analytics.satisfaction_rows(body)
        return answer(request, body, rows, format, f"satisfaction-{group_by}")

    @router.get("/kpis", dependencies=read, responses=RESPONSES)
    async def kpis(
        request: Request,
        *,
        since: Since = None,
        until: Until = None,
        period: Annotated[Period, Query(description="retention period")] = "month",
        active_on: Annotated[ActiveOn, Query(description="order or event")] = "order",
        format: Format = None,
    ) -> Response:
        """Repeat purchase rate, average basket, purchase frequency, historical CLV, referral
        rate, and retention/churn per period (definitions in docs/measurement.md)."""
        async with _runtime(request).engine.connect() as conn:
            body = await analytics.kpi_report(
                conn, Definitions(period, active_on), _utc(since), _utc(until, "until")
            )
        return answer(request, body, analytics.kpi_rows(body), format, "kpis")

    @router.get("/retention", dependencies=read, responses=RESPONSES)
    async def retention(
        request: Request,
        *,
        since: Since = None,
        until: Until = None,
        period: Annotated[Period, Query(description="retention period")] = "month",
        active_on: Annotated[ActiveOn, Query(description="order or event")] = "order",
        format: Format = None,
    ) -> Response:
        """Retention and churn per period alone (the rows of the KPI answer)."""
        async with _runtime(request).engine.connect() as conn:
            body = await analytics.kpi_report(
                conn, Definitions(period, active_on), _utc(since), _utc(until, "until")
            )
        body.pop("kpis")
        return answer(request, body, body["retention"], format, f"retention-{period}")

    @router.get(
        "/clv", dependencies=read,
        responses={**RESPONSES, 409: {"description": "Too few buyers to fit", **_ERROR}},
    )  # fmt: skip
    async def clv(
        request: Request,
        horizon_days: Annotated[float, Query(gt=0, le=3650)] = 365,
        format: Format = None,
    ) -> Response:
        """Predicted CLV (BG/NBD + Gamma-Gamma) over the horizon, fitted on every buyer."""
        try:
            async with _runtime(request).engine.connect() as conn:
                body = await analytics.clv_report(conn, now(), horizon_days)
        except NotEnoughData as exc:
            raise HTTPException(409, f"orders: {exc}") from exc
        rows = [{"metric": k, "value": v} for k, v in body.items() if k != "parameters"]
        return answer(request, body, rows, format, "clv")

    _upstream_routes(router, read)
    return router


def _upstream_routes(router: APIRouter, read: list[Any]) -> None:
    """Reports built on the journey and channels services' stats."""

    @router.get("/journeys/{journey_id}", dependencies=read, responses=RESPONSES)
    async def journey(request: Request, journey_id: str, format: Format = None) -> Response:
        """Per-step funnel, goal conversions, holdout uplift with its 95 % interval, and the
        message rates of the journey's send steps."""
        services = clients(request)
        try:
            stats = await services.journey_stats(journey_id)
        except ServiceUnavailable as exc:
            if exc.status == 404:
                raise HTTPException(404, f"journey_id: no journey {journey_id!r}") from exc
            partial = {"journey_id": journey_id, "funnel": [], "unavailable": unavailable(exc)}
            return answer(request, partial, [], format, f"journey-{journey_id}")
        missing: dict[str, str] = {}
        try:
            channels: dict[str, Any] | None = await services.message_stats(journey_id=journey_id)
        except ServiceUnavailable as exc:
            channels, missing = None, unavailable(exc)
        report = journey_report.journey_report(stats, channels)
        if missing:
            report["unavailable"] = missing
        return answer(request, report, report["funnel"], format, f"journey-{journey_id}")

    @router.get("/channels", dependencies=read, responses=RESPONSES)
    async def channels(
        request: Request,
        *,
        journey_id: str | None = None,
        since: Since = None,
        until: Until = None,
        bucket: Literal["day", "hour"] = "day",
        format: Format = None,
    ) -> Response:
        """Per-channel totals with rates, and the series over time (CSV: the series)."""
        try:
            stats = await clients(request).message_stats(
                journey_id=journey_id, since=since and since.isoformat(),
                until=until and until.isoformat(), bucket=bucket,
            )  # fmt: skip
        except ServiceUnavailable as exc:
            empty = {"totals": {}, "series": [], "by_step": [], "unavailable": unavailable(exc)}
            return answer(request, empty, [], format, "channels")
        totals = {c: journey_report.message_rates(v) for c, v in stats.get("totals", {}).items()}
        body = {**stats, "totals": totals}
        return answer(request, body, list(stats.get("series", [])), format, "channels")
