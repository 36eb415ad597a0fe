"""Use case: recompute RFM scores for the whole base and publish the segment changes."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import rfm_repository
from services.segmenter.rfm import RfmConfig


async def recompute_rfm(
    conn: AsyncConnection, config: RfmConfig | None, now: datetime
) -> dict[str, int]:
    """Scores, memberships, history and outbox in the caller's transaction; figures back."""
    if config is None or not config.enabled:
        return {"profiles": 0, "entered": 0, "exited": 0, "ms": 0}
    started = time.perf_counter()
    scored = await rfm_repository.score(conn, config)
    changes = await rfm_repository.apply_changes(conn, config, now)
    elapsed = round((time.perf_counter() - started) * 1000)
    return {"profiles": scored, **changes, "ms": elapsed}
