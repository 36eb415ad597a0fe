"""Routes of the console (`/console/...`): login with an API key, then the dashboard pages,
rendered with Jinja2 on the server. Pages redirect to the login when the session is missing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.profile.console import views
from services.profile.console.session import COOKIE, Sessions
from services.profile.kpis import ActiveOn, Definitions, Period
from services.profile.pages import _form
from services.profile.service_clients import DeadLetterCounter, ServiceClients
from shared.runtime import Runtime
from shared.settings import Settings

HERE = Path(__file__).parent
NAV = (
    ("kpis", "/console", "KPIs"),
    ("satisfaction", "/console/satisfaction", "Satisfaction"),
    ("journeys", "/console/journeys", "Journeys"),
    ("channels", "/console/channels", "Channels"),
    ("customers", "/console/customers", "Customers"),
)
Clock = Callable[[], datetime]


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )
    env.globals["nav"] = NAV
    return env


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


class _Login(Exception):
    """The request has no valid session."""


def build_console_router(settings: Settings, clock: Clock | None = None) -> APIRouter:
    router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
    env = templates()
    sessions = Sessions(settings)
    now = clock or (lambda: datetime.now(UTC))

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status)

    def guard(request: Request) -> Runtime | RedirectResponse:
        if not sessions.check(request.cookies.get(COOKIE)):
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/console/login?next={target}", 303)
        runtime: Runtime = request.app.state.runtime
        return runtime

    def clients(runtime: Runtime) -> ServiceClients:
        found: ServiceClients = runtime.state["service_clients"]
        return found

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(next: str = "/console", error: str | None = None) -> HTMLResponse:
        return render("login.html", 401 if error else 200, next=_safe(next), error=error)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        key = (form.get("api_key") or [""])[0].strip()
        target = _safe((form.get("next") or ["/console"])[0])
        cookie = sessions.open(key) if key else None
        if cookie is None:
            return render("login.html", 401, next=target, error="api_key: not a valid API key")
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE, cookie, max_age=sessions.max_age_s, httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/console",
        )  # fmt: skip
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/console/login", 303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @router.get("", response_class=HTMLResponse)
    async def kpis(
        request: Request,
        period: Annotated[Period, Query()] = "month",
        active_on: Annotated[ActiveOn, Query()] = "order",
    ) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        dead: DeadLetterCounter = runtime.state["dead_letters"]
        data = await views.kpis_page(runtime.engine, dead, now(), Definitions(period, active_on))
        return render("kpis.html", page="kpis", **data)

    @router.get("/satisfaction", response_class=HTMLResponse)
    async def satisfaction(
        request: Request,
        period: Annotated[Literal["day", "week", "month"], Query()] = "month",
    ) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        data = await views.satisfaction_page(runtime.engine, period)
        return render("satisfaction.html", page="satisfaction", **data)

    @router.get("/journeys", response_class=HTMLResponse)
    async def journeys(request: Request) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        data = await views.journeys_page(clients(runtime))
        return render("journeys.html", page="journeys", **data)

    @router.get("/journeys/{journey_id}", response_class=HTMLResponse)
    async def journey(request: Request, journey_id: str) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        data = await views.journey_page(clients(runtime), journey_id)
        return render("journey.html", page="journeys", **data)

    @router.get("/channels", response_class=HTMLResponse)
    async def channels(
        request: Request, bucket: Annotated[Literal["day", "hour"], Query()] = "day"
    ) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        data = await views.channels_page(clients(runtime), bucket)
        return render("channels.html", page="channels", **data)

    @router.get("/customers", response_class=HTMLResponse)
    async def customers(
        request: Request, q: Annotated[str, Query(max_length=300)] = ""
    ) -> Response:
        runtime = guard(request)
        if isinstance(runtime, Response):
            return runtime
        if not q.strip() or "\x00" in q:
            return render("customer.html", page="customers", query=q, found=None)
        data = await views.customer_page(runtime.engine, clients(runtime), q)
        return render("customer.html", 200 if data["found"] else 404, page="customers", **data)

    return router


def _safe(target: str) -> str:
    """Only redirect within the console (no open redirect through `next`)."""
    return target if target.startswith("/console") and "//" not in target else "/console"
