"""HTTP routes of the segmenter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from services.segmenter import repository
from services.segmenter.definitions import CompiledSegment
from shared.auth import require_scope
from shared.settings import Settings


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    read = Depends(require_scope(settings, "read"))

    @router.get("/v1/segments", tags=["segments"], dependencies=[read])
    async def list_segments(request: Request) -> dict[str, Any]:
        """Loaded segments with their current sizes."""
        runtime = request.app.state.runtime
        segments: list[CompiledSegment] = runtime.state["segments"]
        async with runtime.engine.connect() as conn:
            sizes = await repository.sizes(conn)
        return {
            "segments": [
                {"id": s.segment.id, "name": s.segment.name, "size": sizes.get(s.segment.id, 0)}
                for s in segments
            ],
            "refused": runtime.state["refused"],
        }

    return router
