"""All SQL of the journey service. Every function takes whole batches, never one event: a
read is one statement per table, and everything a batch writes back is one statement
(`write`).

The hot paths (timers, instances, counters, the profiles timers read) talk to asyncpg directly
in the caller's transaction, as the profile service does: `unnest` array parameters, JSON
encoded once with orjson and cast in SQL, JSON read back as text, so a batch of thousands of
firings costs a handful of statements and no per-row SQLAlchemy compilation.
"""

# ruff: noqa: S608  (only constant schema, table and column names are interpolated; every value
# is a bind parameter)
from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey.models import (
    counters,
    entries,
    instances,
    memberships,
    profiles,
    seen_messages,
    timers,
    webhook_calls,
)
from services.journey.state import CounterKey, Instance, StoredProfile, Timer
from shared.codec import json_text
from shared.contracts import ProfileSnapshot
from shared.db import driver_connection, fetch_first

S = "journey"
_INSTANCE_COLUMNS = (
    "instance_id, journey_id, journey_version, profile_id, entry_key, status, current_step, grp,"
    " entered_at, goal_until, converted_at, ended_at, state::text"
)


_SNAPSHOT_JSON = ProfileSnapshot.__pydantic_serializer__.to_json
pg = driver_connection  # short: every hot statement below starts with it


async def mark_seen(conn: AsyncConnection, message_ids: Sequence[str]) -> set[str]:
    """Record message ids; return those not seen before (the others are redeliveries)."""
    if not message_ids:
        return set()
    rows = await fetch_first(  # a batch's first statement: it opens the transaction
        conn,
        f"INSERT INTO {S}.seen_messages (message_id) SELECT * FROM unnest($1::text[])"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        sorted(set(message_ids)),
    )
    return {r[0] for r in rows}


async def prune_seen(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(seen_messages).where(seen_messages.c.seen_at < before))
    return result.rowcount or 0


# -- profiles projection ----------------------------------------------------------------
def _profile_rows(
    snapshots: Iterable[ProfileSnapshot], encode: Callable[[ProfileSnapshot], str] | None
) -> list[list[Any]]:
    """(ids, versions, JSON texts) of the newest snapshot of each customer, in id order."""
    latest: dict[str, ProfileSnapshot] = {}
    for s in snapshots:
        if s.profile_id not in latest or s.version >= latest[s.profile_id].version:
            latest[s.profile_id] = s
    ordered = sorted(latest.items())
    text = encode or (lambda s: _SNAPSHOT_JSON(s).decode())
    return [[p for p, _ in ordered], [s.version for _, s in ordered], [text(s) for _, s in ordered]]


async def load_profiles(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, ProfileSnapshot]:
    """Snapshots read as JSON text and validated straight from it (no dict in between)."""
    parse = ProfileSnapshot.model_validate_json
    return {profile_id: parse(text) for profile_id, text in await _snapshot_texts(conn, ids)}


async def load_stored_profiles(
    conn: AsyncConnection, ids: Iterable[str]
) -> dict[str, StoredProfile]:
    """Snapshots as their JSON text (validated when they were written), decoded on use."""
    return {
        profile_id: StoredProfile(profile_id, text)
        for profile_id, text in await _snapshot_texts(conn, ids)
    }


async def _snapshot_texts(conn: AsyncConnection, ids: Iterable[str]) -> list[tuple[str, str]]:
    """(profile id, snapshot JSON text) of the stored profiles among `ids`."""
    wanted = list(set(ids))
    if not wanted:
        return []
    rows = await (await pg(conn)).fetch(
        f"SELECT profile_id, snapshot::text FROM {S}.profiles WHERE profile_id = ANY($1::text[])",
        wanted,
    )
    return [(r[0], r[1]) for r in rows]


# -- instances --------------------------------------------------------------------------
async def live_instances(
    conn: AsyncConnection, profile_ids: Iterable[str], now: datetime
) -> list[Instance]:
    """Instances an event of these customers can move: running, or still in a goal window.
    Locked, so the timer worker and the consumer never move one instance at the same time."""
    wanted = sorted(set(profile_ids))
    if not wanted:
        return []
    rows = await (await pg(conn)).fetch(
        f"SELECT {_INSTANCE_COLUMNS} FROM {S}.instances WHERE profile_id = ANY($1::text[])"
        " AND (status = 'active' OR (goal_until > $2 AND converted_at IS NULL))"
        " ORDER BY instance_id FOR UPDATE",
        wanted,
        now,
    )
    return [Instance.from_record(r) for r in rows]


async def instances_by_id(conn: AsyncConnection, ids: Iterable[str]) -> list[Instance]:
    """Instances to move on timers; those another transaction holds are skipped (retried on the
    next pass), so the worker never waits on a consumer."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = await (await pg(conn)).fetch(
        f"SELECT {_INSTANCE_COLUMNS} FROM {S}.instances WHERE instance_id = ANY($1::text[])"
        " ORDER BY instance_id FOR UPDATE SKIP LOCKED",
        wanted,
    )
    return [Instance.from_record(r) for r in rows]


_MOVED = (
    "status text, current_step text, grp text, waiting_event text, goal_until timestamptz,"
    " converted_at timestamptz, ended_at timestamptz, profile_id text"
)
_SET_MOVED = (
    "status = x.status, current_step = x.current_step, grp = x.grp,"
    " waiting_event = x.waiting_event, goal_until = x.goal_until, converted_at = x.converted_at,"
    " ended_at = x.ended_at, state = x.state::json, profile_id = x.profile_id"
)


def _instance_rows(changed: Iterable[Instance], new: Collection[str]) -> tuple[list[Any], ...]:
    """(moved, their states, made, their states). The indexed columns travel as one flat JSON
    document a part (one orjson call, no per-element checks as asyncpg makes on arrays), the
    states as a text array beside it: PostgreSQL then parses each state once, as the column's
    input, instead of a second time nested inside the rows (json_to_recordset took ~10 µs a
    row with the state nested, about half that without)."""
    moved: list[dict[str, Any]] = []
    made: list[dict[str, Any]] = []
    moved_states: list[str] = []
    made_states: list[str] = []
    for i in sorted(changed, key=lambda i: i.instance_id):
        row: dict[str, Any] = {
            "instance_id": i.instance_id,
            "status": i.status,
            "current_step": i.step,
            "grp": i.group,
            "waiting_event": i.waiting_event,
            "goal_until": i.goal_until,
            "converted_at": i.converted_at,
            "ended_at": i.ended_at,
            "profile_id": i.profile_id,
        }
        if i.instance_id in new:
            row |= {
                "journey_id": i.journey_id,
                "journey_version": i.version,
                "entry_key": i.entry_key,
                "entered_at": i.entered_at,
            }
            rows, states = made, made_states
        else:
            rows, states = moved, moved_states
        rows.append(row)
        states.append(json_text(i.document()))
    return moved, moved_states, made, made_states


async def active_instances_of_journey(conn: AsyncConnection, journey_id: str) -> list[Instance]:
    rows = await conn.execute(
        select(instances)
        .where(instances.c.journey_id == journey_id, instances.c.status == "active")
        .with_for_update()
    )
    return [Instance.from_row(r) for r in rows]


async def instances_of_profile(conn: AsyncConnection, profile_id: str) -> list[Instance]:
    rows = await conn.execute(
        select(instances)
        .where(instances.c.profile_id == profile_id)
        .order_by(instances.c.entered_at.desc())
        .limit(200)
    )
    return [Instance.from_row(r) for r in rows]


# -- entries and memberships ------------------------------------------------------------
async def last_entries(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, dict[str, datetime]]:
    wanted = sorted(set(profile_ids))
    out: dict[str, dict[str, datetime]] = {}
    if not wanted:
        return out
    rows = await (await pg(conn)).fetch(
        f"SELECT profile_id, journey_id, last_entered_at FROM {S}.entries"
        " WHERE profile_id = ANY($1::text[])",
        wanted,
    )
    for profile_id, journey_id, at in rows:
        out.setdefault(profile_id, {})[journey_id] = at
    return out


def _entry_rows(made: Sequence[tuple[str, str, datetime]]) -> list[list[Any]]:
    """(journeys, profiles, latest entry, entries) per (journey, profile), in key order."""
    latest: dict[tuple[str, str], datetime] = {}
    times: Counter[tuple[str, str]] = Counter()
    for journey_id, profile_id, at in made:
        latest[(journey_id, profile_id)] = max(at, latest.get((journey_id, profile_id), at))
        times[(journey_id, profile_id)] += 1
    ordered = sorted(latest.items())
    return [
        [j for (j, _), _ in ordered],
        [p for (_, p), _ in ordered],
        [at for _, at in ordered],
        [times[k] for k, _ in ordered],
    ]


async def segments_of(conn: AsyncConnection, profile_ids: Iterable[str]) -> dict[str, set[str]]:
    wanted = sorted(set(profile_ids))
    out: dict[str, set[str]] = {}
    if not wanted:
        return out
    rows = await (await pg(conn)).fetch(
        f"SELECT profile_id, segment_id FROM {S}.memberships WHERE profile_id = ANY($1::text[])",
        wanted,
    )
    for profile_id, segment_id in rows:
        out.setdefault(profile_id, set()).add(segment_id)
    return out


async def apply_memberships(conn: AsyncConnection, final: dict[tuple[str, str], bool]) -> None:
    """(profile, segment) -> member after the batch."""
    adds = [
        {"profile_id": p, "segment_id": s} for (p, s), member in sorted(final.items()) if member
    ]
    gone = [(p, s) for (p, s), member in final.items() if not member]
    if adds:
        await conn.execute(insert(memberships).on_conflict_do_nothing(), adds)
    if gone:
        await conn.execute(
            delete(memberships).where(
                memberships.c.profile_id == bindparam("p"),
                memberships.c.segment_id == bindparam("s"),
            ),
            [{"p": p, "s": s} for p, s in gone],
        )


async def segment_members(conn: AsyncConnection, segment_id: str) -> list[str]:
    rows = await conn.execute(
        select(memberships.c.profile_id).where(memberships.c.segment_id == segment_id)
    )
    return list(rows.scalars())


# -- timers -----------------------------------------------------------------------------
def _timer_rows(planned: Sequence[Timer]) -> list[list[Any]]:
    by_id = {t.timer_id: t for t in planned}
    ordered = [by_id[k] for k in sorted(by_id)]
    return [
        [t.timer_id for t in ordered],
        [t.kind for t in ordered],
        [t.due_at for t in ordered],
        [t.journey_id for t in ordered],
        [t.instance_id for t in ordered],
        [t.profile_id for t in ordered],
        [t.token for t in ordered],
    ]


async def schedule_missing(conn: AsyncConnection, planned: Sequence[Timer]) -> None:
    """Create timers that do not exist yet; existing ones keep their due time."""
    if planned:
        rows = [
            {
                "timer_id": t.timer_id,
                "kind": t.kind,
                "due_at": t.due_at,
                "journey_id": t.journey_id,
                "token": t.token,
            }
            for t in planned
        ]
        await conn.execute(insert(timers).on_conflict_do_nothing(), rows)


class Due(NamedTuple):
    """A claimed timer, as the worker reads it."""

    timer_id: str
    kind: str
    due_at: datetime
    journey_id: str
    instance_id: str | None
    profile_id: str | None
    token: str | None


async def claim_due(
    conn: AsyncConnection, now: datetime, limit: int, held: Sequence[str]
) -> list[Due]:
    """Due timers, oldest first, locked for this transaction; rows another replica holds are
    skipped, so any number of workers drain the table side by side. Timers of paused
    journeys (`held`) stay where they are until the journey resumes."""
    rows = await (await pg(conn)).fetch(
        f"SELECT timer_id, kind, due_at, journey_id, instance_id, profile_id, token"
        f" FROM {S}.timers WHERE due_at <= $1 AND journey_id <> ALL($3::text[])"
        " ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
        list(held),
    )
    make = Due._make
    return [make(r) for r in rows]


async def pending_timers(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(timers))).scalar_one())


# -- counters ---------------------------------------------------------------------------
COUNTER_SHARDS = 16
# Round-robin per transaction from a random start: batches running side by side (timer
# workers, consumer lanes, replicas) add to different rows of a counter instead of queueing on
# one row's lock until the other commits. Readers sum the shards.
_counter_shard = itertools.count(random.randrange(COUNTER_SHARDS))  # noqa: S311 (not a secret)


def _counter_rows(deltas: Counter[CounterKey] | None) -> list[list[Any]]:
    """Keys sorted: concurrent batches lock counter rows in one order."""
    rows = [(key, n) for key, n in sorted((deltas or {}).items()) if n]
    return [*([key[f] for key, _ in rows] for f in range(5)), [n for _, n in rows]]


async def counters_of(conn: AsyncConnection, journey_id: str) -> list[Any]:
    rows = await conn.execute(
        select(counters.c.step_id, counters.c.metric, counters.c.label, func.sum(counters.c.n))
        .where(counters.c.journey_id == journey_id)
        .group_by(counters.c.step_id, counters.c.metric, counters.c.label)
    )
    return list(rows)


async def status_counts(conn: AsyncConnection, journey_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(instances.c.status, func.count())
        .where(instances.c.journey_id == journey_id)
        .group_by(instances.c.status)
    )
    return {status: int(n) for status, n in rows}


async def waiting_by_step(conn: AsyncConnection, journey_id: str) -> dict[str, int]:
    rows = await conn.execute(
        select(instances.c.current_step, func.count())
        .where(instances.c.journey_id == journey_id, instances.c.status == "active")
        .group_by(instances.c.current_step)
    )
    return {step: int(n) for step, n in rows if step}


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


# -- merges and erasure -----------------------------------------------------------------
async def move_profile(conn: AsyncConnection, source: str, target: str) -> None:
    """A merged-away customer's instances, timers and entries belong to the survivor now."""
    await conn.execute(
        update(instances).where(instances.c.profile_id == source).values(profile_id=target)
    )
    await conn.execute(
        update(timers).where(timers.c.profile_id == source).values(profile_id=target)
    )
    await conn.execute(
        insert(entries)
        .from_select(
            ["journey_id", "profile_id", "last_entered_at", "times"],
            select(
                entries.c.journey_id, literal(target), entries.c.last_entered_at, entries.c.times
            ).where(entries.c.profile_id == source),
        )
        .on_conflict_do_nothing()
    )
    await conn.execute(delete(entries).where(entries.c.profile_id == source))
    await conn.execute(
        insert(memberships)
        .from_select(
            ["profile_id", "segment_id"],
            select(literal(target), memberships.c.segment_id).where(
                memberships.c.profile_id == source
            ),
        )
        .on_conflict_do_nothing()
    )
    await conn.execute(delete(memberships).where(memberships.c.profile_id == source))
    await conn.execute(delete(profiles).where(profiles.c.profile_id == source))


async def erase_profile(conn: AsyncConnection, profile_id: str) -> None:
    """Everything held about a customer goes; only anonymous counters remain."""
    theirs = select(instances.c.instance_id).where(instances.c.profile_id == profile_id)
    await conn.execute(delete(webhook_calls).where(webhook_calls.c.instance_id.in_(theirs)))
    for table in (instances, timers, entries, memberships, profiles):
        await conn.execute(delete(table).where(table.c.profile_id == profile_id))


async def existing_instances(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    """Which of these instances exist (without locking them)."""
    if not ids:
        return set()
    rows = await (await pg(conn)).fetch(
        f"SELECT instance_id FROM {S}.instances WHERE instance_id = ANY($1::text[])",
        list(set(ids)),
    )
    return {r[0] for r in rows}


# -- one batch's writes ---------------------------------------------------------------------
@dataclass
class Writes:
    """What one transaction writes back, sent as one statement (`write`)."""

    cancelled: Collection[str] = ()  # timers to delete (none of them among `timers`)
    timers: Sequence[Timer] = ()  # to create, or to move (same id, new due time)
    instances: Iterable[Instance] = ()  # moved (held, so locked, by this transaction) or new
    new: Collection[str] = frozenset()  # which of `instances` are new
    entries: Sequence[tuple[str, str, datetime]] = ()  # (journey, profile, when)
    counters: Counter[CounterKey] | None = None
    profiles: Iterable[ProfileSnapshot] = ()  # the newest of each customer is kept
    encode: Callable[[ProfileSnapshot], str] | None = None  # a snapshot's JSON text


# One round trip for a whole batch: a statement of data-modifying CTEs, each a no-op for an
# empty array or '[]'. Ten statements a batch cost about as much in round trips (each a wake
# of the server and of this process, on a two-core machine often a wait for a core) as in
# work. A batch never touches one row twice: cancelled timers are not among those planned,
# and moved instances are not new. Every transaction runs the same statement, so they take
# row locks in one order (rows in key order inside each part). The counters, the rows every
# batch shares, are the main statement, which PostgreSQL runs before the CTEs, so their locks
# are held from here to the commit: each transaction adds to its own shard of them.
_WRITE = (
    f"WITH gone AS (DELETE FROM {S}.timers WHERE timer_id = ANY($2::text[])),"
    f" planned AS (INSERT INTO {S}.timers (timer_id, kind, due_at, journey_id, instance_id,"
    " profile_id, token) SELECT * FROM unnest($3::text[], $4::text[], $5::timestamptz[],"
    " $6::text[], $7::text[], $8::text[], $9::text[])"
    " ON CONFLICT (timer_id) DO UPDATE SET due_at = excluded.due_at, token = excluded.token"
    " WHERE timers.due_at IS DISTINCT FROM excluded.due_at),"
    f" moved AS (UPDATE {S}.instances AS t SET {_SET_MOVED}, updated_at = $1"
    f" FROM ROWS FROM (json_to_recordset($10::text::json) AS (instance_id text, {_MOVED}),"
    " unnest($25::text[])) AS x(instance_id, status, current_step, grp, waiting_event,"
    " goal_until, converted_at, ended_at, profile_id, state)"
    " WHERE t.instance_id = x.instance_id),"
    f" made AS (INSERT INTO {S}.instances (instance_id, journey_id, journey_version, entry_key,"
    " entered_at, status, current_step, grp, waiting_event, goal_until, converted_at,"
    " ended_at, state, profile_id, updated_at)"
    " SELECT instance_id, journey_id, journey_version, entry_key, entered_at, status,"
    " current_step, grp, waiting_event, goal_until, converted_at, ended_at, state::json,"
    " profile_id, $1"
    " FROM ROWS FROM (json_to_recordset($11::text::json) AS (instance_id text, journey_id text,"
    f" journey_version int, entry_key text, entered_at timestamptz, {_MOVED}),"
    " unnest($26::text[])) AS x(instance_id, journey_id, journey_version, entry_key,"
    " entered_at, status, current_step, grp, waiting_event, goal_until, converted_at,"
    " ended_at, profile_id, state)"
    f" ON CONFLICT (instance_id) DO UPDATE SET {_SET_MOVED.replace('x.', 'excluded.')},"
    " updated_at = excluded.updated_at),"
    f" entered AS (INSERT INTO {S}.entries AS e (journey_id, profile_id, last_entered_at, times)"
    " SELECT * FROM unnest($12::text[], $13::text[], $14::timestamptz[], $15::int[])"
    " ON CONFLICT (journey_id, profile_id) DO UPDATE SET"
    " last_entered_at = greatest(e.last_entered_at, excluded.last_entered_at),"
    " times = e.times + excluded.times),"
    f" snapshots AS (INSERT INTO {S}.profiles AS p (profile_id, version, snapshot)"
    " SELECT i, v, s::json FROM unnest($16::text[], $17::bigint[], $18::text[]) AS x(i, v, s)"
    " ON CONFLICT (profile_id) DO UPDATE SET version = excluded.version,"
    " snapshot = excluded.snapshot WHERE p.version <= excluded.version) "
    f"INSERT INTO {S}.counters (journey_id, version, step_id, metric, label, n, shard)"
    " SELECT *, $27::smallint FROM unnest($19::text[], $20::int[], $21::text[], $22::text[],"
    " $23::text[], $24::bigint[]) ON CONFLICT (journey_id, version, step_id, metric, label, shard)"
    " DO UPDATE SET n = counters.n + excluded.n"
)


async def write(conn: AsyncConnection, w: Writes, now: datetime) -> None:
    """Everything of `w` in one statement (nothing when it holds nothing)."""
    moved, moved_states, made, made_states = _instance_rows(w.instances, w.new)
    timers = _timer_rows(w.timers)
    entries = _entry_rows(w.entries)
    profiles = _profile_rows(w.profiles, w.encode)
    counters = _counter_rows(w.counters)
    if not (w.cancelled or timers[0] or moved or made or entries[0] or profiles[0] or counters[0]):
        return
    await (await pg(conn)).execute(
        _WRITE,
        now,
        sorted(set(w.cancelled)),
        *timers,
        json_text(moved),
        json_text(made),
        *entries,
        *profiles,
        *counters,
        moved_states,
        made_states,
        next(_counter_shard) % COUNTER_SHARDS,
    )
