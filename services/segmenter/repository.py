"""All SQL of the segmenter's hot paths. A batch of events costs a fixed handful of round trips
whatever its size: lock the profiles, add facts and purchases, read what deciding needs, write
every change (snapshots, memberships, history, timers) in one statement; hot-path statements
go to asyncpg directly with `unnest` arrays. Ops queries live in `queries.py`, RFM in
`rfm_repository.py`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
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
from shared.db import any_of, driver_connection, fetch_first

ProfileFacts = dict[FactKey, list[tuple[datetime, float | None]]]
FactRow = tuple[str, str, str, datetime, float | None]  # profile, event, property, at, value
PurchaseRow = tuple[str, datetime, int, float]  # profile, last order, orders, money


async def stored_for_update(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Last applied version and snapshot per known profile, rows locked against the clock (a
    statement of its own: what is read after it must see what the lock waited for). A
    batch's first statement: it opens the transaction (`fetch_first`)."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await fetch_first(
        conn,
        "SELECT profile_id, version, snapshot FROM segmenter.profiles"
        " WHERE profile_id = ANY($1::text[]) ORDER BY profile_id FOR UPDATE",
        ids,
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
    await write_changes(conn, Changes(profiles=list(rows)), datetime.now(UTC))


async def add_events(
    conn: AsyncConnection, facts: Sequence[FactRow], purchases: Sequence[PurchaseRow]
) -> None:
    """Facts, and orders folded into each profile's purchase summary (the RFM input)."""
    await write_changes(
        conn, Changes(facts=list(facts), purchases=list(purchases)), datetime.now(UTC)
    )


@dataclass
class Inputs:
    """What deciding a batch of profiles reads: facts, current memberships, stored timers."""

    facts: dict[str, ProfileFacts] = field(default_factory=dict)
    memberships: dict[str, set[str]] = field(default_factory=dict)
    timers: dict[tuple[str, str], datetime] = field(default_factory=dict)


async def decision_inputs(
    conn: AsyncConnection,
    profile_ids: Iterable[str],
    events: Iterable[str],
    since: datetime,
    *,
    timers_of: Iterable[str] = (),
) -> Inputs:
    """Facts of `events` since `since` and memberships of these profiles, and the stored timers
    of `timers_of`, in one round trip. Every profile asked for has an entry (maybe empty)."""
    ids, names, timed = sorted(set(profile_ids)), sorted(set(events)), sorted(set(timers_of))
    out = Inputs({pid: {} for pid in ids}, {pid: set() for pid in ids})
    if not ids and not timed:
        return out
    rows = await (await driver_connection(conn)).fetch(
        "SELECT 'f' AS kind, profile_id, event AS a, property AS b, at, value"
        " FROM segmenter.facts WHERE profile_id = ANY($1::text[]) AND event = ANY($2::text[])"
        " AND at > $3 "
        "UNION ALL SELECT 'm', profile_id, segment_id, NULL, NULL, NULL"
        " FROM segmenter.memberships WHERE profile_id = ANY($4::text[]) "
        "UNION ALL SELECT 't', profile_id, segment_id, NULL, due_at, NULL"
        " FROM segmenter.segment_timers WHERE profile_id = ANY($5::text[]) "
        "ORDER BY kind, at",
        ids if names else [],
        names,
        since,
        ids,
        timed,
    )
    for kind, pid, a, b, at, value in rows:
        if kind == "f":
            out.facts[pid].setdefault((a, b), []).append((at, value))
        elif kind == "m":
            out.memberships[pid].add(a)
        else:
            out.timers[(pid, a)] = at
    return out


async def facts_of(
    conn: AsyncConnection, profile_ids: Iterable[str], events: Iterable[str], since: datetime
) -> dict[str, ProfileFacts]:
    return (await decision_inputs(conn, profile_ids, events, since)).facts


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
    return (await decision_inputs(conn, profile_ids, (), datetime.now(UTC))).memberships


@dataclass
class Changes:
    """Everything a batch of decisions writes, in one statement (`write_changes`)."""

    facts: list[FactRow] = field(default_factory=list)
    purchases: list[PurchaseRow] = field(default_factory=list)  # folded into the summaries
    profiles: list[tuple[str, int, Any]] = field(default_factory=list)  # id, version, snapshot
    entered: list[tuple[str, str, int]] = field(default_factory=list)  # profile, segment, version
    exited: list[tuple[str, str, int]] = field(default_factory=list)  # profile, segment, version
    due: list[tuple[str, str, datetime]] = field(default_factory=list)  # the next change
    cleared: list[tuple[str, str]] = field(default_factory=list)  # timers with no next change


# Row sets that are only inserted travel as one JSON array of arrays (`[[profile, segment,
# version], ...]`): orjson writes it in microseconds and the server parses it in C, where
# `unnest` arrays cost the driver two Python-level type checks per element (most of a batch's
# encoding time). The rows deleted by key (exits, cleared timers; few) stay `unnest` arrays,
# whose known length makes the planner probe the primary key (a JSON function's default
# estimate of 100 rows makes it hash the whole table). The history is derived from the
# entries and exits rather than sent twice. Snapshots are the exception: nested in the rows,
# each `r->` re-parsed the whole row (a snapshot is 1-2 KB), three parses a row; as a text
# array beside the rows (ROWS FROM zips the two) PostgreSQL parses each once, as the column's
# input (measured ~11 -> ~5 µs a row in the server, ~2.5 µs more in the driver). A batch's
# facts and purchases go in here too, so deciding reads the stored facts and adds the new ones
# itself (one round trip fewer).
_WRITE_CHANGES = (
    "WITH f AS (INSERT INTO segmenter.facts (profile_id, event, property, at, value)"
    "  SELECT r->>0, r->>1, r->>2, (r->>3)::timestamptz, (r->>4)::float8"
    "  FROM json_array_elements($10::json) r),"
    " o AS (INSERT INTO segmenter.purchases AS t"
    "  (profile_id, last_order_at, orders_count, monetary)"
    "  SELECT r->>0, (r->>1)::timestamptz, (r->>2)::int, (r->>3)::float8"
    "  FROM json_array_elements($11::json) r ON CONFLICT (profile_id) DO UPDATE SET"
    "  last_order_at = greatest(t.last_order_at, excluded.last_order_at),"
    "  orders_count = t.orders_count + excluded.orders_count,"
    "  monetary = t.monetary + excluded.monetary),"
    " p AS (INSERT INTO segmenter.profiles (profile_id, version, snapshot)"
    "  SELECT r->>0, (r->>1)::bigint, s::json"
    "  FROM ROWS FROM (json_array_elements($1::json), unnest($12::text[])) AS x(r, s)"
    "  ON CONFLICT (profile_id) DO UPDATE SET version = excluded.version,"
    "  snapshot = excluded.snapshot WHERE excluded.version > profiles.version),"
    " e AS (INSERT INTO segmenter.memberships"
    "  (profile_id, segment_id, profile_version, entered_at)"
    "  SELECT r->>0, r->>1, (r->>2)::bigint, $2 FROM json_array_elements($3::json) r"
    "  ON CONFLICT DO NOTHING),"
    " x AS (DELETE FROM segmenter.memberships t USING unnest($4::text[], $5::text[])"
    "  AS d(p, s) WHERE t.profile_id = d.p AND t.segment_id = d.s),"
    " h AS (INSERT INTO segmenter.membership_history"
    "  (profile_id, segment_id, change, profile_version, at)"
    "  SELECT r->>0, r->>1, 'entered', (r->>2)::bigint, $2 FROM json_array_elements($3::json) r"
    "  UNION ALL SELECT p, s, 'exited', v, $2"
    "  FROM unnest($4::text[], $5::text[], $6::bigint[]) AS u(p, s, v)),"
    " c AS (DELETE FROM segmenter.segment_timers t USING unnest($7::text[], $8::text[])"
    "  AS d(p, s) WHERE t.profile_id = d.p AND t.segment_id = d.s) "
    "INSERT INTO segmenter.segment_timers (profile_id, segment_id, due_at)"
    " SELECT r->>0, r->>1, (r->>2)::timestamptz FROM json_array_elements($9::json) r"
    " ON CONFLICT (profile_id, segment_id) DO UPDATE SET due_at = excluded.due_at"
)


async def write_changes(conn: AsyncConnection, changes: Changes, at: datetime) -> None:
    """Facts, purchases, snapshots, memberships, history and timers in one statement of
    data-modifying CTEs. A batch never touches one row twice: one decision per profile, and a
    (profile, segment) either enters or exits, either has a next change or none; purchases
    come folded per profile. History rows (entries, then exits) are the entries and exits."""
    c = changes
    if not any((c.facts, c.purchases, c.profiles, c.entered, c.exited, c.due, c.cleared)):
        return
    await (await driver_connection(conn)).execute(
        _WRITE_CHANGES,
        dumps([(pid, version) for pid, version, _ in c.profiles]).decode(),
        at,
        dumps(c.entered).decode(),
        *_columns(c.exited, 3),
        *_columns(c.cleared, 2),
        dumps(c.due).decode(),
        dumps(c.facts).decode(),
        dumps(c.purchases).decode(),
        [dumps(snapshot).decode() for _, _, snapshot in c.profiles],
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column arrays, the shape `unnest` takes (empty arrays for no rows)."""
    return [[r[i] for r in rows] for i in range(width)]


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


async def add_purchases(conn: AsyncConnection, rows: Sequence[PurchaseRow]) -> None:
    await add_events(conn, [], rows)


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
