"""SQL of the stored definitions and the ops switches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter.definitions import CompiledSegment
from services.segmenter.models import definitions


def dump(seg: CompiledSegment) -> dict[str, Any]:
    return seg.segment.model_dump(mode="json", by_alias=True, exclude_none=True)


async def all_definitions(conn: AsyncConnection) -> Sequence[Row[Any]]:
    return (await conn.execute(select(definitions).order_by(definitions.c.segment_id))).all()


async def save_files(
    conn: AsyncConnection, segments: Sequence[CompiledSegment], keep: set[str]
) -> None:
    """Store the accepted file definitions; forget files that are gone."""
    for seg in segments:
        if seg.id in keep:
            continue
        stmt = insert(definitions).values(segment_id=seg.id, source=seg.source, body=dump(seg))
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[definitions.c.segment_id],
                set_={
                    "source": stmt.excluded.source,
                    "body": stmt.excluded.body,
                    "updated_at": func.now(),
                },
            )
        )
    await conn.execute(
        delete(definitions).where(
            definitions.c.source != "api",
            definitions.c.segment_id.not_in([s.id for s in segments] or [""]),
        )
    )


async def save_api_definition(conn: AsyncConnection, body: dict[str, Any]) -> None:
    stmt = insert(definitions).values(segment_id=body["id"], source="api", body=body)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[definitions.c.segment_id],
            set_={"body": stmt.excluded.body, "updated_at": func.now()},
            where=definitions.c.source == "api",
        )
    )


async def set_enabled(conn: AsyncConnection, segment_id: str, enabled: bool) -> bool:
    result = await conn.execute(
        update(definitions)
        .where(definitions.c.segment_id == segment_id)
        .values(enabled_override=enabled, updated_at=func.now())
    )
    return bool(result.rowcount)
