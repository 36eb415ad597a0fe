"""The HTTP face every service shares: lifespan wiring, `/healthz`, `/readyz`, `/metrics`, and
validation errors as 400s that name the field."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.logs import configure_logging
from shared.runtime import Runtime
from shared.settings import Settings

Setup = Callable[[Runtime], Awaitable[None]]


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Each error as `{field, message}` with the path in the body, e.g. `batch.3.event`."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", "invalid"))})
    return out


#: How long our HTTP servers keep an idle connection open: longer than any of our clients keeps
#: one (httpx 5 s, the channels' pyreqwest pool 30 s), so the client always closes first. Equal
#: timeouts let a request leave on a connection the server is closing at that instant, which
#: the client sees as a dropped answer (and channels would have to report as `unknown`).
SERVER_KEEP_ALIVE_S = 75

_ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "message": {"type": "string"}},
}
_ERROR = {"content": {"application/json": {"schema": _ERROR_BODY}}}
# A page answers with a page, except when the request itself fails validation (JSON, as anywhere).
_HTML_ERROR = {
    "content": {
        "text/html": {"schema": {"type": "string"}},
        "application/json": {"schema": _ERROR_BODY},
    }
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document as the API really answers: 400 (not 422) for a bad request, 401
    without a key, 404 for an unknown id, so clients and contract tests can rely on it."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                ok = responses.get("200", {}).get("content", {})
                error = _HTML_ERROR if "text/html" in ok else _ERROR
                responses.setdefault(
                    "400", {"description": "Bad request: names the field", **error}
                )
                if path not in ("/healthz", "/readyz"):
                    responses.setdefault("401", {"description": "Missing or invalid key", **error})
                    responses.setdefault("403", {"description": "Key lacks the scope", **error})
                if "{" in path:
                    responses.setdefault("404", {"description": "Not found", **error})
        schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_service_app(settings: Settings, *, title: str, setup: Setup) -> FastAPI:
    """A FastAPI app whose lifespan builds the runtime, lets the service wire itself, runs it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await setup(runtime)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"success": False, "message": message, "errors": errors}, 400)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Database and broker reachable, consumers and outbox running; otherwise 503 and why."""
        checks = await request.app.state.runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
