"""HTTP ingestion of the profile service: Segment-compatible routes (same paths, auth, field
names and responses as Segment's tracking API). Bodies are read within their size limit before
parsing; every problem is a 4xx naming the field, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from services.profile.ingest import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    BodyTooLarge,
    prepare,
    read_json_object,
    to_record,
)
from shared.auth import require_write_key
from shared.events import Event, InvalidEvent
from shared.runtime import Runtime
from shared.settings import Settings


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _body(request: Request, limit: int) -> dict[str, Any]:
    try:
        return await read_json_object(request, limit)
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from exc
    except InvalidEvent as exc:
        raise HTTPException(400, str(exc)) from exc


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    write_key = Depends(require_write_key(settings))

    for type_ in ("track", "identify", "page", "screen", "alias", "group"):

        async def ingest(
            request: Request, _: str = write_key, type_: str = type_
        ) -> dict[str, bool]:
            message = await _body(request, MAX_MESSAGE_BYTES)
            try:
                event = prepare(message, type_)
            except InvalidEvent as exc:
                raise HTTPException(400, str(exc)) from exc
            traceparent = request.headers.get("traceparent")
            await _runtime(request).producer.send(to_record(event, traceparent))
            return {"success": True}

        router.add_api_route(
            f"/v1/{type_}",
            ingest,
            methods=["POST"],
            tags=["ingestion"],
            summary=f"Segment {type_} call",
            name=f"ingest_{type_}",
            description=f"One Segment `{type_}` message (JSON object, at most 32 KB).",
        )

    @router.post(
        "/v1/batch",
        tags=["ingestion"],
        summary="Segment batch call",
        description=f"`{{batch: [...]}}`, at most {MAX_BATCH_MESSAGES} messages and 500 KB.",
    )
    async def batch(request: Request, _: str = write_key) -> dict[str, bool]:
        body = await _body(request, MAX_BATCH_BYTES)
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise HTTPException(400, "batch: a list of messages is required")
        if len(messages) > MAX_BATCH_MESSAGES:
            raise HTTPException(400, f"batch: at most {MAX_BATCH_MESSAGES} messages")
        shared: dict[str, Any] = {k: body[k] for k in ("context", "integrations") if k in body}
        events: list[Event] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise HTTPException(400, f"batch.{i}: a message object is required")
            try:
                events.append(prepare(message, message.get("type"), shared))
            except InvalidEvent as exc:
                raise HTTPException(400, f"batch.{i}.{exc}") from exc
        traceparent = request.headers.get("traceparent")
        await _runtime(request).producer.send_batch([to_record(e, traceparent) for e in events])
        return {"success": True}

    return router
