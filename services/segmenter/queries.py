"""SQL of the ops API: sizes, members page by page, a profile's segments and history, and the
stored profiles a draft definition is previewed against."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter.models import membership_history, memberships, profiles


async def members(
    conn: AsyncConnection, segment_id: str, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Members in profile-id order, from just after `after` (keyset pagination)."""
    query = select(
        memberships.c.profile_id, memberships.c.entered_at, memberships.c.profile_version
    ).where(memberships.c.segment_id == segment_id)
    if after:
        query = query.where(memberships.c.profile_id > after)
    rows = await conn.execute(query.order_by(memberships.c.profile_id).limit(limit))
    return [dict(r._mapping) for r in rows]


async def segments_of(conn: AsyncConnection, profile_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(memberships.c.segment_id, memberships.c.entered_at, memberships.c.profile_version)
        .where(memberships.c.profile_id == profile_id)
        .order_by(memberships.c.segment_id)
    )
    return [dict(r._mapping) for r in rows]


async def history_of(conn: AsyncConnection, profile_id: str, limit: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(
            membership_history.c.segment_id,
            membership_history.c.change,
            membership_history.c.at,
            membership_history.c.profile_version,
        )
        .where(membership_history.c.profile_id == profile_id)
        .order_by(membership_history.c.at.desc(), membership_history.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


async def stored_profiles(
    conn: AsyncConnection, limit: int, chunk: int = 2_000
) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
    """Stored snapshots in chunks (erased tombstones left out)."""
    after, seen = "", 0
    while seen < limit:
        rows = (
            await conn.execute(
                select(profiles.c.profile_id, profiles.c.snapshot)
                .where(profiles.c.profile_id > after, cast(profiles.c.snapshot, Text) != "{}")
                .order_by(profiles.c.profile_id)
                .limit(min(chunk, limit - seen))
            )
        ).all()
        if not rows:
            return
        seen += len(rows)
        after = rows[-1][0]
        yield [(r[0], r[1]) for r in rows]
