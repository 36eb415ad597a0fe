"""HTTP routes of the segmenter: segments with sizes, members, a profile's segments and
history, draft previews, definitions through the API, enable/disable, RFM on demand."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import ValidationError

from services.segmenter import definitions_repository as store
from services.segmenter import queries, repository, rfm_repository
from services.segmenter.definitions import CompiledSegment, Segment, check_set
from services.segmenter.preview import preview
from services.segmenter.registry import API, Registry
from services.segmenter.rfm_service import AlreadyRunning
from services.segmenter.settings import SegmenterSettings
from services.segmenter.worker import ClockLoop
from shared.auth import require_scope
from shared.events import describe_errors


def _no_nul(*values: str | None) -> None:
    """PostgreSQL text cannot hold NUL: a 400 naming it, never a database error."""
    if any(v is not None and "\x00" in v for v in values):
        raise HTTPException(400, "NUL characters are not allowed")


def _has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL anywhere, keys included."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _parse_draft(body: Any, registry: Registry, draft_id: str | None = None) -> CompiledSegment:
    """A definition sent as JSON, or as YAML text in a string; 400 naming the field if invalid."""
    if isinstance(body, bytes | bytearray):
        raise HTTPException(400, "body: send the definition as application/json")
    if _has_nul(body):
        raise HTTPException(400, "NUL characters are not allowed")
    if isinstance(body, str):
        try:
            body = yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise HTTPException(400, f"invalid YAML: {exc}") from exc
    if isinstance(body, dict) and draft_id is not None:
        body = {**body, "id": draft_id}
    try:
        compiled = CompiledSegment.of(Segment.model_validate(body), API)
    except ValidationError as exc:
        raise HTTPException(400, describe_errors(exc)) from exc
    others = [(s, None) for s in registry.segments if s.id != compiled.id]
    _, errors = check_set([*others, (compiled, None)])
    if errors:
        raise HTTPException(400, "; ".join(e.message for e in errors))
    return compiled


def state(request: Request) -> tuple[Any, Registry, ClockLoop]:
    runtime = request.app.state.runtime
    return runtime, runtime.state["registry"], runtime.state["clock_loop"]


async def switch(request: Request, segment_id: str, enabled: bool) -> dict[str, Any]:
    _no_nul(segment_id)
    runtime, registry, _ = state(request)
    async with runtime.engine.begin() as conn:
        if not await store.set_enabled(conn, segment_id, enabled):
            raise HTTPException(404, f"no segment {segment_id}")
        await registry.refresh(conn)
    return {"id": segment_id, "enabled": enabled}


def build_router(settings: SegmenterSettings) -> APIRouter:
    router = APIRouter(tags=["segments"])
    read = [Depends(require_scope(settings, "read"))]
    write = [Depends(require_scope(settings, "write"))]

    @router.get("/v1/segments", dependencies=read)
    async def list_segments(request: Request) -> dict[str, Any]:
        """Every segment (definitions and RFM) with its current size; refused files and why."""
        runtime, registry, loop = state(request)
        async with runtime.engine.connect() as conn:
            sizes = await repository.sizes(conn)
        items = [
            {"id": s.id, "name": s.segment.name, "kind": "definition", "source": s.source,
             "enabled": registry.enabled.get(s.id, False), "size": sizes.get(s.id, 0),
             "time_dependent": s.time_dependent}
            for s in registry.segments
        ]  # fmt: skip
        for rfm in loop.rfm.segments if loop.rfm else []:
            items.append(
                {"id": rfm.segment_id, "name": rfm.name, "kind": "rfm", "source": "rfm",
                 "enabled": loop.rfm.enabled if loop.rfm else False,
                 "size": sizes.get(rfm.segment_id, 0), "time_dependent": False}
            )  # fmt: skip
        return {"segments": items, "refused": [str(e) for e in runtime.state["refused"]]}

    @router.get("/v1/segments/{segment_id}/members", dependencies=read)
    async def members(
        request: Request,
        segment_id: str,
        limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
        after: str | None = None,
    ) -> dict[str, Any]:
        """One page of members in profile-id order; pass `next` back as `after`."""
        _no_nul(segment_id, after)
        runtime, _, _ = state(request)
        async with runtime.engine.connect() as conn:
            items = await queries.members(conn, segment_id, after, limit)
        nxt = items[-1]["profile_id"] if len(items) == limit else None
        return {"segment_id": segment_id, "items": items, "next": nxt}

    @router.get("/v1/profiles/{profile_id}/segments", dependencies=read)
    async def profile_segments(
        request: Request, profile_id: str, limit: Annotated[int, Query(ge=1, le=1_000)] = 100
    ) -> dict[str, Any]:
        """Where a customer is now, their RFM scores, and their entries and exits, newest first."""
        _no_nul(profile_id)
        runtime, _, _ = state(request)
        async with runtime.engine.connect() as conn:
            return {
                "profile_id": profile_id,
                "segments": await queries.segments_of(conn, profile_id),
                "rfm": await rfm_repository.scores_of(conn, profile_id),
                "history": await queries.history_of(conn, profile_id, limit),
            }

    @router.post("/v1/segments/preview", dependencies=read)
    async def preview_draft(request: Request, body: Annotated[Any, Body()]) -> dict[str, Any]:
        """Size and sample of a draft (JSON, or YAML text as a JSON string); nothing is stored."""
        runtime, registry, _ = state(request)
        draft = _parse_draft(body, registry)
        async with runtime.engine.connect() as conn:
            return await preview(
                conn, draft, registry.catalog, now=runtime.state["clock"].now(),
                limit=settings.segmenter_preview_limit,
            )  # fmt: skip

    @router.put("/v1/segments/{segment_id}", dependencies=write)
    async def put_definition(
        request: Request, segment_id: str, body: Annotated[Any, Body()]
    ) -> dict[str, Any]:
        """Create or replace a definition held in the database (files keep their own ids)."""
        _no_nul(segment_id)
        runtime, registry, _ = state(request)
        existing = registry.get(segment_id)
        if existing is not None and existing.source != API:
            raise HTTPException(409, f"{segment_id} is defined by {existing.source}")
        draft = _parse_draft(body, registry, segment_id)
        async with runtime.engine.begin() as conn:
            await store.save_api_definition(conn, store.dump(draft))
            await registry.refresh(conn)
        return {"id": segment_id, "enabled": registry.enabled.get(segment_id, False)}

    @router.post("/v1/segments/{segment_id}/enable", dependencies=write)
    async def enable(request: Request, segment_id: str) -> dict[str, Any]:
        """Decide the segment again from the next event or timer on."""
        return await switch(request, segment_id, True)

    @router.post("/v1/segments/{segment_id}/disable", dependencies=write)
    async def disable(request: Request, segment_id: str) -> dict[str, Any]:
        """Stop deciding the segment; its members stay as they are until it is enabled."""
        return await switch(request, segment_id, False)

    @router.post(
        "/v1/rfm/recompute", dependencies=write,
        responses={409: {"description": "Another recompute is running"}},
    )  # fmt: skip
    async def rfm_recompute(request: Request) -> dict[str, Any]:
        """Score the whole base now; the changes are published like any segment change.
        409 while another recompute runs (this replica's clock, another replica, a request)."""
        _, _, loop = state(request)
        try:
            return await loop.recompute_rfm()
        except AlreadyRunning as exc:
            raise HTTPException(409, str(exc)) from exc

    return router
