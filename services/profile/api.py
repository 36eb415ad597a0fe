"""HTTP routes of the profile service: Segment-compatible ingestion and profile lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request

from services.profile import repository
from services.profile.ingest import MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, prepare, to_record
from services.profile.service import snapshot
from shared.auth import require_scope, require_write_key
from shared.contracts import ProfileSnapshot
from shared.events import InvalidEvent
from shared.runtime import Runtime
from shared.settings import Settings

Message = Annotated[dict[str, Any], Body(description="A Segment message")]


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _bad(exc: InvalidEvent, prefix: str = "") -> HTTPException:
    return HTTPException(400, f"{prefix}{exc}")


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    write_key = Depends(require_write_key(settings))
    read = Depends(require_scope(settings, "read"))

    async def publish_one(request: Request, message: dict[str, Any], type_: str) -> dict[str, bool]:
        try:
            event = prepare(message, type_)
        except InvalidEvent as exc:
            raise _bad(exc) from exc
        await _runtime(request).producer.send(to_record(event, request.headers.get("traceparent")))
        return {"success": True}

    for type_ in ("track", "identify", "page", "screen", "alias", "group"):

        async def ingest(
            request: Request, message: Message, _: str = write_key, type_: str = type_
        ) -> dict[str, bool]:
            return await publish_one(request, message, type_)

        router.add_api_route(
            f"/v1/{type_}",
            ingest,
            methods=["POST"],
            tags=["ingestion"],
            summary=f"Segment {type_} call",
            name=f"ingest_{type_}",
        )

    @router.post("/v1/batch", tags=["ingestion"], summary="Segment batch call")
    async def batch(request: Request, body: Message, _: str = write_key) -> dict[str, bool]:
        if int(request.headers.get("content-length") or 0) > MAX_BATCH_BYTES:
            raise HTTPException(400, f"body: batch larger than {MAX_BATCH_BYTES // 1024} KB")
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise HTTPException(400, "batch: a list of messages is required")
        if len(messages) > MAX_BATCH_MESSAGES:
            raise HTTPException(400, f"batch: at most {MAX_BATCH_MESSAGES} messages")
        shared: dict[str, Any] = {k: body[k] for k in ("context", "integrations") if k in body}
        events = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise HTTPException(400, f"batch.{i}: a message object is required")
            try:
                events.append(prepare(message, message.get("type"), shared))
            except InvalidEvent as exc:
                raise _bad(exc, f"batch.{i}.") from exc
        traceparent = request.headers.get("traceparent")
        await _runtime(request).producer.send_batch([to_record(e, traceparent) for e in events])
        return {"success": True}

    @router.get("/v1/profiles/{profile_id}", tags=["profiles"], dependencies=[read])
    async def get_profile(request: Request, profile_id: str) -> ProfileSnapshot:
        """A profile by id or by identity (`user:<userId>`, `anon:<anonymousId>`)."""
        async with _runtime(request).engine.connect() as conn:
            state = await repository.get_profile(conn, profile_id)
        if state is None:
            raise HTTPException(404, f"profile_id: no profile {profile_id!r}")
        return snapshot(state)

    @router.get("/v1/profiles/{profile_id}/timeline", tags=["profiles"], dependencies=[read])
    async def get_timeline(
        request: Request,
        profile_id: str,
        before: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Events of a profile, newest first; page with `before` = the last timestamp seen."""
        async with _runtime(request).engine.connect() as conn:
            state = await repository.get_profile(conn, profile_id)
            if state is None:
                raise HTTPException(404, f"profile_id: no profile {profile_id!r}")
            items = await repository.get_timeline(conn, state.profile_id, before, limit)
        next_before = items[-1]["timestamp"] if len(items) == limit else None
        return {"items": items, "next_before": next_before}

    return router
