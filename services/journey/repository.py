"""All SQL of the journey service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey.models import instances


async def create_instances(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert instances; return the ids that did not exist (the others are redeliveries)."""
    if not rows:
        return set()
    stmt = (
        insert(instances)
        .values(list(rows))
        .on_conflict_do_nothing()
        .returning(instances.c.instance_id)
    )
    return set((await conn.execute(stmt)).scalars())


async def counts_by_journey(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    rows = await conn.execute(
        select(instances.c.journey_id, instances.c.status, func.count()).group_by(
            instances.c.journey_id, instances.c.status
        )
    )
    out: dict[str, dict[str, int]] = {}
    for journey_id, status, count in rows:
        out.setdefault(journey_id, {})[status] = count
    return out
