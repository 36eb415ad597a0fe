"""HTTP routes of the channels service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from services.channels import repository
from shared.auth import require_scope
from shared.settings import Settings


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    read = Depends(require_scope(settings, "read"))

    @router.get("/v1/sends/stats", tags=["sends"], dependencies=[read])
    async def stats(request: Request) -> dict[str, int]:
        """Send attempts by status: sent, suppressed, failed, unknown, sending."""
        async with request.app.state.runtime.engine.connect() as conn:
            return await repository.status_counts(conn)

    @router.get("/v1/profiles/{profile_id}/sends", tags=["sends"], dependencies=[read])
    async def sends_of(request: Request, profile_id: str) -> list[dict[str, Any]]:
        """The latest send attempts of a customer with the policy decision of each."""
        async with request.app.state.runtime.engine.connect() as conn:
            return await repository.attempts_of(conn, profile_id)

    return router
