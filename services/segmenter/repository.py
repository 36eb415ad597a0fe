"""All SQL of the segmenter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter.models import memberships
from shared.db import any_of


async def memberships_of(conn: AsyncConnection, profile_ids: Iterable[str]) -> dict[str, set[str]]:
    ids = list(set(profile_ids))
    out: dict[str, set[str]] = {pid: set() for pid in ids}
    if not ids:
        return out
    rows = await conn.execute(
        select(memberships.c.profile_id, memberships.c.segment_id)
        .where(any_of(memberships.c.profile_id, ids))
        .with_for_update()
    )
    for row in rows:
        out[row.profile_id].add(row.segment_id)
    return out


async def enter(conn: AsyncConnection, rows: Sequence[tuple[str, str, int]]) -> None:
    if rows:
        await conn.execute(
            insert(memberships).on_conflict_do_nothing(),
            [{"profile_id": p, "segment_id": s, "profile_version": v} for p, s, v in rows],
        )


async def leave(conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
    if pairs:
        await conn.execute(
            delete(memberships).where(
                tuple_(memberships.c.profile_id, memberships.c.segment_id).in_(pairs)
            )
        )


async def sizes(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(memberships.c.segment_id, func.count()).group_by(memberships.c.segment_id)
    )
    return dict(rows.tuples().all())
