"""Ops API of the profile service: look a customer up by any identifier, search by trait, read
the timeline (time range, types, stable cursor) and the consent history, change consent, and
GDPR export and erase. Read routes need a read key, changes a write key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from services.profile import ops, repository
from services.profile.consent import InvalidConsent, parse_update
from services.profile.models import outbox
from services.profile.publish import snapshot
from services.profile.settings import ProfileSettings
from services.profile.traits import normalise_identifier
from shared.auth import require_scope
from shared.codec import dumps, loads
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

IDENTIFIER = "A profile id, or an identity: `user:<userId>`, `anon:<anonymousId>`, " \
    "`email:<address>`, `phone:<number>`"  # fmt: skip


class ConsentBody(BaseModel):
    """A consent change: `consent` sets answers; `unsubscribed` sets the global opt-out."""

    consent: dict[str, Any] = Field(
        default_factory=dict,
        description='{channel: {message_type: bool}}, e.g. {"email": {"marketing": false}}',
    )
    unsubscribed: bool | None = Field(default=None, description="Refuse all but transactional.")
    source: str = Field(
        default="api", max_length=100, description="Who changed it, kept in the history."
    )


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _id(identifier: str) -> str:
    """An identifier as stored; PostgreSQL text cannot hold NUL, so one is a 400, not a 500."""
    if "\x00" in identifier:
        raise HTTPException(400, "profile_id: NUL characters are not accepted")
    return normalise_identifier(identifier)


def _text(values: list[str] | None, field: str) -> list[str]:
    if any("\x00" in v for v in values or ()):
        raise HTTPException(400, f"{field}: NUL characters are not accepted")
    return values or []


def _utc(moment: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC, as Segment reads timestamps."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _not_found(identifier: str) -> HTTPException:
    return HTTPException(404, f"profile_id: no profile {identifier!r}")


def encode_cursor(timestamp: datetime, message_id: str) -> str:
    return base64.urlsafe_b64encode(dumps([timestamp.isoformat(), message_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, message_id = loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(stamp), str(message_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, "cursor: not a cursor this API returned") from exc


async def publish(runtime: Runtime, records: list[Any]) -> None:
    """Wake the relay after a commit that queued records."""
    relay: OutboxRelay = runtime.state["profile_relay"]
    if records:
        relay.wake()


def build_ops_router(settings: ProfileSettings) -> APIRouter:
    router = APIRouter(tags=["profiles"])
    read = Depends(require_scope(settings, "read"))
    write = Depends(require_scope(settings, "write"))
    _lookup_routes(router, settings, read)
    _consent_routes(router, read, write)
    _gdpr_routes(router, read, write)
    return router


def _lookup_routes(router: APIRouter, settings: ProfileSettings, read: Any) -> None:

    @router.get("/v1/profiles", dependencies=[read])
    async def search(request: Request) -> dict[str, Any]:
        """Profiles by trait: `?trait.email=ada@example.com&trait.city=Lyon` (all must match)."""
        wanted = {
            k[len("trait.") :]: v for k, v in request.query_params.items() if k.startswith("trait.")
        }
        if not wanted:
            raise HTTPException(400, "query: give at least one trait.<name>=<value>")
        _text([*wanted, *wanted.values()], "trait")
        async with _runtime(request).engine.connect() as conn:
            found = await repository.search_by_traits(conn, wanted, settings.search_limit)
        return {"items": [snapshot(s) for s in found]}

    @router.get("/v1/profiles/{identifier}", dependencies=[read], description=IDENTIFIER)
    async def get_profile(request: Request, identifier: str) -> dict[str, Any]:
        """A profile by id or by any identity; a merged-away id answers with the survivor."""
        async with _runtime(request).engine.connect() as conn:
            state = await repository.get_profile(conn, _id(identifier))
        if state is None:
            raise _not_found(identifier)
        return snapshot(state)

    @router.get("/v1/profiles/{identifier}/timeline", dependencies=[read])
    async def timeline(
        request: Request,
        identifier: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        type: Annotated[list[str] | None, Query(description="segment types")] = None,
        event: Annotated[list[str] | None, Query(description="track event names")] = None,
        cursor: str | None = None,
        before: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Events newest first, `since <= timestamp < until`; page with `cursor` = the
        `next_cursor` of the previous page (stable under ties and concurrent appends)."""
        after = decode_cursor(cursor) if cursor else None
        since, until, before = (_utc(t) for t in (since, until, before))
        until = min(until, before) if until and before else until or before
        async with _runtime(request).engine.connect() as conn:
            profile_id = await repository.find_profile_id(conn, _id(identifier))
            if profile_id is None:
                raise _not_found(identifier)
            items = await repository.get_timeline(
                conn, profile_id, since=since, until=until, types=_text(type, "type"),
                events=_text(event, "event"), after=after, limit=limit,
            )  # fmt: skip
        last = items[-1] if len(items) == limit else None
        return {
            "profile_id": profile_id,
            "items": items,
            "next_cursor": encode_cursor(last["timestamp"], last["message_id"]) if last else None,
        }


def _consent_routes(router: APIRouter, read: Any, write: Any) -> None:
    @router.get("/v1/profiles/{identifier}/consent", dependencies=[read])
    async def get_consent(request: Request, identifier: str) -> dict[str, Any]:
        """Current consent and the history of every change (source and time)."""
        async with _runtime(request).engine.connect() as conn:
            state = await repository.get_profile(conn, _id(identifier))
            if state is None:
                raise _not_found(identifier)
            history = await repository.consent_history(conn, state.profile_id)
        return {
            "profile_id": state.profile_id,
            "consent": state.consent,
            "unsubscribed": bool(state.traits.get("unsubscribed")),
            "history": history,
        }

    @router.get("/v1/profiles/{identifier}/consent/history", dependencies=[read])
    async def get_consent_history(request: Request, identifier: str) -> dict[str, Any]:
        async with _runtime(request).engine.connect() as conn:
            profile_id = await repository.find_profile_id(conn, _id(identifier))
            if profile_id is None:
                raise _not_found(identifier)
            return {
                "profile_id": profile_id,
                "items": await repository.consent_history(conn, profile_id),
            }

    @router.put("/v1/profiles/{identifier}/consent", dependencies=[write])
    async def put_consent(request: Request, identifier: str, body: ConsentBody) -> dict[str, Any]:
        """Change consent; the new profile goes out on jm.profiles and `Consent Changed` on
        jm.profile-events in the same commit."""
        try:
            update = parse_update(body.consent)
        except InvalidConsent as exc:
            raise HTTPException(400, str(exc)) from exc
        request_ = ops.ConsentRequest(update, body.source, body.unsubscribed)
        runtime = _runtime(request)
        try:
            async with runtime.engine.begin() as conn:
                result = await ops.change_consent(
                    conn, _id(identifier), request_, datetime.now(UTC)
                )
                await add_to_outbox(conn, outbox, result.records)
        except ops.ProfileNotFound as exc:
            raise _not_found(identifier) from exc
        await publish(runtime, result.records)
        return {
            "profile_id": result.state.profile_id,
            "version": result.state.version,
            "consent": result.state.consent,
            "unsubscribed": bool(result.state.traits.get("unsubscribed")),
            "changes": [c.as_dict() for c in result.changes],
        }


def _gdpr_routes(router: APIRouter, read: Any, write: Any) -> None:
    @router.get("/v1/profiles/{identifier}/export", dependencies=[read])
    async def export(request: Request, identifier: str) -> dict[str, Any]:
        """Everything held about a customer, as JSON (GDPR access and portability)."""
        async with _runtime(request).engine.connect() as conn:
            try:
                return await ops.export(conn, _id(identifier))
            except ops.ProfileNotFound as exc:
                raise _not_found(identifier) from exc

    @router.delete("/v1/profiles/{identifier}", dependencies=[write])
    async def erase(request: Request, identifier: str) -> dict[str, Any]:
        """Erase a customer; `Profile Erased` tells every service to drop its state."""
        runtime = _runtime(request)
        try:
            async with runtime.engine.begin() as conn:
                records = await ops.erase(conn, _id(identifier), datetime.now(UTC))
                await add_to_outbox(conn, outbox, records)
        except ops.ProfileNotFound as exc:
            raise _not_found(identifier) from exc
        await publish(runtime, records)
        return {"erased": True, "profile_ids": sorted({r.key.decode() for r in records if r.key})}
