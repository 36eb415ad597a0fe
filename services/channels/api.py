"""Ops routes of the channels service: message log, stats, templates, providers, suppressions,
unknown attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from services.channels import repository, stats
from services.channels.deciding import Claimed
from services.channels.settings import ChannelsSettings
from services.channels.templates import PARTS, TemplateError, Templates
from shared.auth import require_scope
from shared.contracts import DispatchRequest
from shared.runtime import Runtime

Channel = Literal["email", "sms", "push", "webhook"]


class Suppression(BaseModel):
    channel: Channel
    address: str = Field(min_length=1, max_length=500, pattern="^[^\x00]+$")
    reason: str = Field(default="added by ops", max_length=500, pattern="^[^\x00]*$")


class TemplateSource(BaseModel):
    """Parts to validate, by file name: `{"subject.liquid": "...", "html.mjml": "..."}`."""

    parts: dict[str, str] = Field(max_length=50)


def _text(value: str, field: str) -> str:
    """PostgreSQL text cannot hold NUL: one is a 400 naming the field, not a 500."""
    if "\x00" in value:
        raise HTTPException(400, f"{field}: NUL characters are not accepted")
    return value


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def build_router(settings: ChannelsSettings) -> APIRouter:
    router = APIRouter()
    read = Depends(require_scope(settings, "read"))
    write = Depends(require_scope(settings, "write"))

    @router.get("/v1/sends/stats", tags=["messages"], dependencies=[read])
    async def status_stats(request: Request) -> dict[str, int]:
        """Send attempts by status: sent, suppressed, deferred, failed, unknown, sending."""
        async with _runtime(request).engine.connect() as conn:
            return await repository.status_counts(conn)

    @router.get("/v1/messages/stats", tags=["messages"], dependencies=[read])
    async def message_stats(
        request: Request, journey_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None, bucket: Literal["day", "hour"] = "day",
    ) -> dict[str, Any]:  # fmt: skip
        """Totals per channel, a time series and counts per journey step."""
        async with _runtime(request).engine.connect() as conn:
            found = await repository.message_stats(
                conn, journey_id and _text(journey_id, "journey_id"), since, until, bucket
            )
        return stats.shape(found["rows"])

    @router.get("/v1/profiles/{profile_id}/sends", tags=["messages"], dependencies=[read])
    async def sends_of(request: Request, profile_id: str) -> list[dict[str, Any]]:
        """A customer's latest messages, each with every policy decision and its reason."""
        async with _runtime(request).engine.connect() as conn:
            return await repository.attempts_where(conn, profile_id=_text(profile_id, "profile_id"))

    @router.get("/v1/journeys/{journey_id}/messages", tags=["messages"], dependencies=[read])
    async def messages_of_journey(
        request: Request, journey_id: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        """A journey's latest messages with their decisions."""
        async with _runtime(request).engine.connect() as conn:
            return await repository.attempts_where(
                conn, journey_id=_text(journey_id, "journey_id"), limit=max(1, min(limit, 1000))
            )

    @router.get("/v1/messages/unknown", tags=["messages"], dependencies=[read])
    async def unknown(request: Request) -> dict[str, Any]:
        """Attempts cut off by a crash between claim and provider answer: maybe sent."""
        async with _runtime(request).engine.connect() as conn:
            found = await repository.unknown_attempts(conn)
        return {"count": len(found), "attempts": found}

    _template_routes(router, read, write)
    _ops_routes(router, read, write)
    return router


def _template_routes(router: APIRouter, read: Any, write: Any) -> None:
    @router.get("/v1/templates", tags=["templates"], dependencies=[read])
    async def list_templates(request: Request) -> dict[str, Any]:
        """Templates loaded (with their channels and locales) and those refused, with why."""
        templates: Templates = _runtime(request).state["templates"]
        return {
            "templates": [
                {"name": t.name, "channels": t.channels,
                 "parts": {p: sorted(v) for p, v in t.parts.items()}}
                for t in templates.templates.values()
            ],
            "invalid": templates.problems,
        }  # fmt: skip

    @router.post("/v1/templates/reload", tags=["templates"], dependencies=[write])
    async def reload_templates(request: Request) -> dict[str, Any]:
        """Read the templates directory again (after a git pull)."""
        templates: Templates = _runtime(request).state["templates"]
        templates.reload()
        return {"loaded": sorted(templates.templates), "invalid": templates.problems}

    @router.post("/v1/templates/validate", tags=["templates"], dependencies=[read])
    async def validate(request: Request, body: TemplateSource) -> dict[str, Any]:
        """Check parts before committing them: syntax, unknown variables, MJML."""
        templates: Templates = _runtime(request).state["templates"]
        errors = []
        for name, source in body.parts.items():
            kind = "mjml" if name.endswith(".mjml") else "liquid"
            try:
                templates.parse(source, kind)
            except TemplateError as exc:
                errors.append({"part": name, "error": str(exc).removeprefix("template:")})
        return {"valid": not errors, "errors": errors}

    @router.get("/v1/templates/{name}/preview", tags=["templates"], dependencies=[read])
    async def preview(
        request: Request, name: str, profile_id: str, channel: Channel = "email",
        message_type: str = "marketing",
    ) -> dict[str, Any]:  # fmt: skip
        """Render a template for a customer as they would get it (links and tracking included)."""
        runtime = _runtime(request)
        async with runtime.engine.connect() as conn:
            contacts = await repository.contacts_of(conn, [_text(profile_id, "profile_id")])
        if profile_id not in contacts:
            raise HTTPException(404, f"profile_id: {profile_id} is not known to channels")
        if channel not in PARTS:
            raise HTTPException(400, f"channel: {channel} has no template parts")
        now = runtime.state["pipeline"].clock()
        request_ = DispatchRequest(
            dispatch_id=f"preview:{name}:{profile_id}", profile_id=profile_id, channel=channel,
            message_type=message_type, template=name, journey_id="preview", journey_version=0,
            step_id="preview", data={"journey": {"id": "preview", "name": "Preview"}},
            requested_at=now,
        )  # fmt: skip
        delivery = runtime.state["pipeline"].delivery
        try:
            message = delivery.compose(Claimed(request_, contacts[profile_id], "preview"))
        except TemplateError as exc:
            raise HTTPException(400, f"template: {exc}") from exc
        return {"template": name, "channel": channel, "parts": message.parts,
                "headers": message.headers}  # fmt: skip


def _ops_routes(router: APIRouter, read: Any, write: Any) -> None:
    @router.get("/v1/providers", tags=["providers"], dependencies=[read])
    async def providers(request: Request) -> dict[str, str]:
        """Each provider reachable (`ok`) or what is wrong."""
        found = _runtime(request).state["providers"]
        return {channel: await p.provider.health() for channel, p in found.items()}

    @router.get("/v1/suppressions", tags=["suppressions"], dependencies=[read])
    async def list_suppressions(
        request: Request, channel: Channel | None = None
    ) -> list[dict[str, Any]]:
        async with _runtime(request).engine.connect() as conn:
            return await repository.list_suppressions(conn, channel)

    @router.post("/v1/suppressions", tags=["suppressions"], dependencies=[write])
    async def add_suppression(request: Request, body: Suppression) -> dict[str, bool]:
        """Never send to this address again on this channel."""
        async with _runtime(request).engine.begin() as conn:
            await repository.add_suppression(conn, body.channel, body.address, body.reason)
        return {"success": True}

    @router.delete(
        "/v1/suppressions/{channel}/{address}", tags=["suppressions"], dependencies=[write]
    )
    async def remove_suppression(
        request: Request, channel: Channel, address: str
    ) -> dict[str, bool]:
        async with _runtime(request).engine.begin() as conn:
            if not await repository.remove_suppression(conn, channel, _text(address, "address")):
                raise HTTPException(404, f"address: {address} is not suppressed on {channel}")
        return {"success": True}
