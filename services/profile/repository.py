"""All SQL of the profile service. Every function takes the caller's connection and works on a
whole batch with a fixed number of round trips."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.behaviour import ProfileState
from services.profile.models import identities, processed_messages, profiles, timeline
from shared.db import any_of


def _state(row: Row[Any]) -> ProfileState:
    return ProfileState(
        profile_id=row.profile_id,
        version=row.version,
        user_id=row.user_id,
        anonymous_id=row.anonymous_id,
        traits=row.traits,
        behaviour=row.behaviour,
        consent=row.consent,
        updated_at=row.updated_at,
    )


async def claim_messages(conn: AsyncConnection, message_ids: Sequence[str]) -> set[str]:
    """Record message ids as processed; return those seen for the first time."""
    if not message_ids:
        return set()
    stmt = (
        insert(processed_messages)
        .values([{"message_id": m} for m in message_ids])
        .on_conflict_do_nothing()
        .returning(processed_messages.c.message_id)
    )
    return set((await conn.execute(stmt)).scalars())


async def owners_of(conn: AsyncConnection, keys: Iterable[str]) -> dict[str, str]:
    keys = list(set(keys))
    if not keys:
        return {}
    rows = await conn.execute(
        select(identities.c.identity, identities.c.profile_id).where(
            any_of(identities.c.identity, keys)
        )
    )
    return {row.identity: row.profile_id for row in rows}


async def add_identities(conn: AsyncConnection, owners: Mapping[str, str]) -> dict[str, str]:
    """Insert new identities; return the owner each key really has (a concurrent writer may win)."""
    if not owners:
        return {}
    await conn.execute(
        insert(identities)
        .values([{"identity": k, "profile_id": v} for k, v in owners.items()])
        .on_conflict_do_nothing()
    )
    return await owners_of(conn, owners)


async def lock_profiles(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, ProfileState]:
    """Load and lock the profiles a batch touches, so concurrent batches never lose an update."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(profiles)
        .where(any_of(profiles.c.profile_id, ids))
        .order_by(profiles.c.profile_id)
        .with_for_update()
    )
    return {row.profile_id: _state(row) for row in rows}


async def save_profiles(conn: AsyncConnection, states: Iterable[ProfileState]) -> None:
    rows = [
        {
            "profile_id": s.profile_id,
            "user_id": s.user_id,
            "anonymous_id": s.anonymous_id,
            "version": s.version,
            "traits": s.traits,
            "behaviour": s.behaviour,
            "consent": s.consent,
            "updated_at": s.updated_at,
        }
        for s in states
    ]
    if not rows:
        return
    stmt = insert(profiles)
    stmt = stmt.on_conflict_do_update(
        index_elements=[profiles.c.profile_id],
        set_={
            c: literal_column(f"excluded.{c}")
            for c in (
                "user_id",
                "anonymous_id",
                "version",
                "traits",
                "behaviour",
                "consent",
                "updated_at",
            )
        },
    )
    await conn.execute(stmt, rows)


async def append_timeline(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(timeline), list(rows))


async def get_profile(conn: AsyncConnection, profile_id: str) -> ProfileState | None:
    """A profile by its id or by any of its identities (`user:42`, `anon:abc`)."""
    if ":" in profile_id:
        profile_id = (await owners_of(conn, [profile_id])).get(profile_id, profile_id)
    row = (
        await conn.execute(select(profiles).where(profiles.c.profile_id == profile_id))
    ).one_or_none()
    return None if row is None else _state(row)


async def get_timeline(
    conn: AsyncConnection, profile_id: str, before: datetime | None, limit: int
) -> list[dict[str, Any]]:
    query = select(timeline).where(timeline.c.profile_id == profile_id)
    if before is not None:
        query = query.where(timeline.c.timestamp < before)
    rows = await conn.execute(query.order_by(timeline.c.timestamp.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]
