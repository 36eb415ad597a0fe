"""All SQL of the segmenter's hot paths: one statement per kind of row per batch, never one
per event. Ops queries live in `queries.py`, RFM in `rfm_repository.py`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter.evaluation import FactKey
from services.segmenter.models import (
    facts,
    membership_history,
    memberships,
    profiles,
    purchases,
    rfm_scores,
    segment_timers,
)
from shared.codec import dumps
from shared.db import any_of

ProfileFacts = dict[FactKey, list[tuple[datetime, float | None]]]


async def stored_for_update(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Last applied version and snapshot per known profile, rows locked against the clock."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(profiles.c.profile_id, profiles.c.version, profiles.c.snapshot)
        .where(any_of(profiles.c.profile_id, ids))
        .order_by(profiles.c.profile_id)
        .with_for_update()
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def snapshots_for_update(
    conn: AsyncConnection, profile_ids: Iterable[str], *, skip_locked: bool = False
) -> dict[str, dict[str, Any]]:
    """Stored snapshots, rows locked; with `skip_locked`, profiles busy elsewhere are left out
    (the clock loop never waits on the consumer, so the two cannot deadlock)."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(profiles.c.profile_id, profiles.c.snapshot)
        .where(any_of(profiles.c.profile_id, ids))
        .order_by(profiles.c.profile_id)
        .with_for_update(skip_locked=skip_locked)
    )
    return {r[0]: r[1] for r in rows}


async def save_profiles(conn: AsyncConnection, rows: Sequence[tuple[str, int, Any]]) -> None:
    """Upsert the latest snapshot of each profile; an older version never overwrites."""
    if not rows:
        return
    await conn.execute(
        text(
            "INSERT INTO segmenter.profiles (profile_id, version, snapshot)"
            " SELECT p, v, s::jsonb FROM unnest(CAST(:p AS text[]), CAST(:v AS bigint[]),"
            "  CAST(:s AS text[])) AS u(p, v, s)"
            " ON CONFLICT (profile_id) DO UPDATE SET version = excluded.version,"
            "  snapshot = excluded.snapshot WHERE excluded.version > profiles.version"
        ),
        {
            "p": [r[0] for r in rows],
            "v": [r[1] for r in rows],
            "s": [dumps(r[2]).decode() for r in rows],
        },
    )


async def add_facts(
    conn: AsyncConnection, rows: Sequence[tuple[str, str, str, datetime, float | None]]
) -> None:
    if rows:
        await conn.execute(
            text(
                "INSERT INTO segmenter.facts (profile_id, event, property, at, value)"
                " SELECT * FROM unnest(CAST(:p AS text[]), CAST(:e AS text[]),"
                "  CAST(:k AS text[]), CAST(:at AS timestamptz[]), CAST(:v AS float8[]))"
            ),
            {
                "p": [r[0] for r in rows],
                "e": [r[1] for r in rows],
                "k": [r[2] for r in rows],
                "at": [r[3] for r in rows],
                "v": [r[4] for r in rows],
            },
        )


async def facts_of(
    conn: AsyncConnection, profile_ids: Iterable[str], events: Iterable[str], since: datetime
) -> dict[str, ProfileFacts]:
    ids, names = sorted(set(profile_ids)), sorted(set(events))
    out: dict[str, ProfileFacts] = {pid: {} for pid in ids}
    if not ids or not names:
        return out
    rows = await conn.execute(
        select(facts.c.profile_id, facts.c.event, facts.c.property, facts.c.at, facts.c.value)
        .where(any_of(facts.c.profile_id, ids), any_of(facts.c.event, names), facts.c.at > since)
        .order_by(facts.c.at)
    )
    for pid, event, prop, at, value in rows:
        out[pid].setdefault((event, prop), []).append((at, value))
    return out


async def prune_facts(conn: AsyncConnection, horizons: dict[str, float], now: datetime) -> int:
    """Forget facts beyond the longest window that reads them, and facts nobody reads."""
    removed = 0
    for event, days in horizons.items():
        result = await conn.execute(
            delete(facts).where(facts.c.event == event, facts.c.at < now - timedelta(days=days))
        )
        removed += result.rowcount or 0
    result = await conn.execute(delete(facts).where(facts.c.event.not_in(list(horizons) or [""])))
    return removed + (result.rowcount or 0)


async def memberships_of(conn: AsyncConnection, profile_ids: Iterable[str]) -> dict[str, set[str]]:
    ids = sorted(set(profile_ids))
    out: dict[str, set[str]] = {pid: set() for pid in ids}
    if not ids:
        return out
    rows = await conn.execute(
        select(memberships.c.profile_id, memberships.c.segment_id).where(
            any_of(memberships.c.profile_id, ids)
        )
    )
    for row in rows:
        out[row.profile_id].add(row.segment_id)
    return out


async def enter(conn: AsyncConnection, rows: Sequence[tuple[str, str, int]], at: datetime) -> None:
    if rows:
        await conn.execute(
            text(
                "INSERT INTO segmenter.memberships"
                " (profile_id, segment_id, profile_version, entered_at)"
                " SELECT p, s, v, :at FROM unnest(CAST(:p AS text[]), CAST(:s AS text[]),"
                "  CAST(:v AS bigint[])) AS u(p, s, v) ON CONFLICT DO NOTHING"
            ),
            {
                "p": [r[0] for r in rows],
                "s": [r[1] for r in rows],
                "v": [r[2] for r in rows],
                "at": at,
            },
        )


async def leave(conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> None:
    await _delete_pairs(conn, "memberships", pairs)


async def _delete_pairs(
    conn: AsyncConnection, table: str, pairs: Sequence[tuple[str, str]]
) -> None:
    """Delete (profile_id, segment_id) rows: one array join, whatever the count."""
    if pairs:
        await conn.execute(
            text(
                f"DELETE FROM segmenter.{table} t USING unnest(CAST(:p AS text[]),"  # noqa: S608
                " CAST(:s AS text[])) AS d(p, s) WHERE t.profile_id = d.p AND t.segment_id = d.s"
            ),
            {"p": [p for p, _ in pairs], "s": [s for _, s in pairs]},
        )


async def add_history(
    conn: AsyncConnection, rows: Sequence[tuple[str, str, str, int]], at: datetime
) -> None:
    if rows:
        await conn.execute(
            text(
                "INSERT INTO segmenter.membership_history"
                " (profile_id, segment_id, change, profile_version, at)"
                " SELECT p, s, c, v, :at FROM unnest(CAST(:p AS text[]), CAST(:s AS text[]),"
                "  CAST(:c AS text[]), CAST(:v AS bigint[])) AS u(p, s, c, v)"
            ),
            {
                "p": [r[0] for r in rows],
                "s": [r[1] for r in rows],
                "c": [r[2] for r in rows],
                "v": [r[3] for r in rows],
                "at": at,
            },
        )


async def set_timers(
    conn: AsyncConnection,
    due: Sequence[tuple[str, str, datetime]],
    cleared: Sequence[tuple[str, str]],
) -> None:
    """Upsert the next change of each (profile, segment); drop the ones with none."""
    await _delete_pairs(conn, "segment_timers", cleared)
    if due:
        await conn.execute(
            text(
                "INSERT INTO segmenter.segment_timers (profile_id, segment_id, due_at)"
                " SELECT * FROM unnest(CAST(:p AS text[]), CAST(:s AS text[]),"
                "  CAST(:at AS timestamptz[]))"
                " ON CONFLICT (profile_id, segment_id) DO UPDATE SET due_at = excluded.due_at"
            ),
            {"p": [r[0] for r in due], "s": [r[1] for r in due], "at": [r[2] for r in due]},
        )


async def timers_of(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[tuple[str, str], datetime]:
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(
            segment_timers.c.profile_id, segment_timers.c.segment_id, segment_timers.c.due_at
        ).where(any_of(segment_timers.c.profile_id, ids))
    )
    return {(r[0], r[1]): r[2] for r in rows}


async def due_timers(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Due timers, locked so that other replicas skip them."""
    rows = await conn.execute(
        select(segment_timers.c.profile_id, segment_timers.c.segment_id)
        .where(segment_timers.c.due_at <= now)
        .order_by(segment_timers.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(r[0], r[1]) for r in rows]


async def add_purchases(
    conn: AsyncConnection, rows: Sequence[tuple[str, datetime, int, float]]
) -> None:
    """Fold a batch's orders into each profile's purchase summary (the RFM input)."""
    if rows:
        await conn.execute(
            text(
                "INSERT INTO segmenter.purchases AS t"
                " (profile_id, last_order_at, orders_count, monetary)"
                " SELECT * FROM unnest(CAST(:p AS text[]), CAST(:at AS timestamptz[]),"
                "  CAST(:n AS int[]), CAST(:m AS float8[]))"
                " ON CONFLICT (profile_id) DO UPDATE SET"
                "  last_order_at = greatest(t.last_order_at, excluded.last_order_at),"
                "  orders_count = t.orders_count + excluded.orders_count,"
                "  monetary = t.monetary + excluded.monetary"
            ),
            {
                "p": [r[0] for r in rows],
                "at": [r[1] for r in rows],
                "n": [r[2] for r in rows],
                "m": [r[3] for r in rows],
            },
        )


async def forget(conn: AsyncConnection, profile_ids: Sequence[str], tombstone: int) -> None:
    """Drop everything held about these profiles; a bare row at `tombstone` keeps late
    snapshots of them from coming back."""
    if not profile_ids:
        return
    for table in (memberships, membership_history, facts, segment_timers, purchases, rfm_scores):
        await conn.execute(delete(table).where(any_of(table.c.profile_id, profile_ids)))
    await conn.execute(delete(profiles).where(any_of(profiles.c.profile_id, profile_ids)))
    await save_profiles(conn, [(p, tombstone, {}) for p in profile_ids])


async def move_history(conn: AsyncConnection, merged: str, survivor: str) -> None:
    """A merged-away profile's facts, purchases and history become the survivor's."""
    await conn.execute(
        update(facts).where(facts.c.profile_id == merged).values(profile_id=survivor)
    )
    await conn.execute(
        update(membership_history)
        .where(membership_history.c.profile_id == merged)
        .values(profile_id=survivor)
    )
    moved = (
        await conn.execute(delete(purchases).where(purchases.c.profile_id == merged).returning(
            purchases.c.last_order_at, purchases.c.orders_count, purchases.c.monetary
        ))
    ).first()  # fmt: skip
    if moved is not None:
        await add_purchases(conn, [(survivor, moved[0], moved[1], moved[2])])


async def sizes(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(memberships.c.segment_id, func.count()).group_by(memberships.c.segment_id)
    )
    return {r[0]: r[1] for r in rows}
