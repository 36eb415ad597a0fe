"""HTTP routes of the journey service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from services.journey import repository
from services.journey.engine import CompiledJourney
from shared.auth import require_scope
from shared.settings import Settings


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    read = Depends(require_scope(settings, "read"))

    @router.get("/v1/journeys", tags=["journeys"], dependencies=[read])
    async def list_journeys(request: Request) -> dict[str, Any]:
        """Loaded journeys with instance counts by status, and the files refused at load."""
        runtime = request.app.state.runtime
        journeys: list[CompiledJourney] = runtime.state["journeys"]
        async with runtime.engine.connect() as conn:
            counts = await repository.counts_by_journey(conn)
        return {
            "journeys": [
                {
                    "id": c.journey.id,
                    "name": c.journey.name,
                    "version": c.journey.version,
                    "enabled": c.journey.enabled,
                    "instances": counts.get(c.journey.id, {}),
                }
                for c in journeys
            ],
            "refused": runtime.state["refused"],
        }

    return router
