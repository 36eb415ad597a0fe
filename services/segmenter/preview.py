"""Use case: how many stored customers a draft definition would hold, and a sample of them,
decided exactly as the consumer would (facts, other segments' memberships) and stored nowhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import queries, repository
from services.segmenter.catalog import Catalog
from services.segmenter.definitions import CompiledSegment
from services.segmenter.membership import decide


async def preview(
    conn: AsyncConnection,
    draft: CompiledSegment,
    catalog: Catalog,
    *,
    now: datetime,
    limit: int,
    sample_size: int = 20,
) -> dict[str, Any]:
    keys = draft.fact_keys()
    untracked = sorted({e for e, _ in keys} - catalog.tracked_events)
    since = now - timedelta(days=max(draft.horizon_days().values(), default=0.0))
    size, evaluated, sample = 0, 0, list[str]()
    async for chunk in queries.stored_profiles(conn, limit):
        ids = [pid for pid, _ in chunk]
        facts = await repository.facts_of(conn, ids, {e for e, _ in keys}, since)
        current = await repository.memberships_of(conn, ids) if draft.references() else {}
        for pid, snapshot in chunk:
            decision = decide(
                pid, [draft], snapshot, facts.get(pid, {}), now=now, current=current.get(pid, set())
            )
            evaluated += 1
            if draft.id in decision.members:
                size += 1
                if len(sample) < sample_size:
                    sample.append(pid)
    notes = [
        f"event `{e}` is not kept by any running definition yet: its history starts when "
        "this definition is published"
        for e in untracked
    ]
    return {"size": size, "evaluated": evaluated, "sample": sample, "notes": notes}
