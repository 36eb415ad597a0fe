"""SQL of published journeys: every version's definition (instances keep theirs) and each
journey's status. Kept apart from the hot-path SQL in `repository`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey.dsl import Journey
from services.journey.models import definitions, journeys


async def stored(conn: AsyncConnection) -> tuple[list[Journey], dict[str, str]]:
    """Every stored version, and each journey's status."""
    rows = await conn.execute(
        select(definitions.c.definition).order_by(definitions.c.journey_id, definitions.c.version)
    )
    found = [Journey.model_validate(r.definition) for r in rows]
    status = {r.journey_id: r.status for r in await conn.execute(select(journeys))}
    return found, status


async def definition(conn: AsyncConnection, journey_id: str, version: int) -> dict[str, Any] | None:
    row = await conn.execute(
        select(definitions.c.definition).where(
            definitions.c.journey_id == journey_id, definitions.c.version == version
        )
    )
    found = row.scalar_one_or_none()
    return dict(found) if found is not None else None


async def publish(conn: AsyncConnection, journey: Journey, source: str) -> str:
    """Store a version. `new`, `same` (already stored as is) or `conflict` (that version
    exists with other content: versions are immutable, bump it)."""
    document = journey.model_dump(mode="json")
    existing = await definition(conn, journey.id, journey.version)
    if existing is not None:
        return "same" if existing == document else "conflict"
    await conn.execute(
        insert(definitions).values(
            journey_id=journey.id, version=journey.version, definition=document, source=source
        )
    )
    stmt = insert(journeys).values(
        journey_id=journey.id, status="active", latest_version=journey.version
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[journeys.c.journey_id],
            set_={"latest_version": stmt.excluded.latest_version},
            where=journeys.c.latest_version < stmt.excluded.latest_version,
        )
    )
    return "new"


async def set_status(conn: AsyncConnection, journey_id: str, status: str) -> bool:
    result = await conn.execute(
        update(journeys).where(journeys.c.journey_id == journey_id).values(status=status)
    )
    return bool(result.rowcount)
