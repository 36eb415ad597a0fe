"""All SQL of the journey service. Every function takes whole batches: one statement per
batch and table, never one per event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, update
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
from services.journey.state import CounterKey, Instance, Timer
from shared.contracts import ProfileSnapshot
from shared.db import any_of


async def mark_seen(conn: AsyncConnection, message_ids: Sequence[str]) -> set[str]:
    """Record message ids; return those not seen before (the others are redeliveries)."""
    if not message_ids:
        return set()
    stmt = insert(seen_messages).on_conflict_do_nothing().returning(seen_messages.c.message_id)
    rows = [{"message_id": m} for m in sorted(set(message_ids))]
    return set((await conn.execute(stmt, rows)).scalars())


async def prune_seen(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(seen_messages).where(seen_messages.c.seen_at < before))
    return result.rowcount or 0


# -- profiles projection ----------------------------------------------------------------
async def save_profiles(conn: AsyncConnection, snapshots: Iterable[ProfileSnapshot]) -> None:
    """Keep the newest snapshot of each customer (timers and schedules run on it)."""
    latest: dict[str, ProfileSnapshot] = {}
    for s in snapshots:
        if s.profile_id not in latest or s.version >= latest[s.profile_id].version:
            latest[s.profile_id] = s
    if not latest:
        return
    stmt = insert(profiles)
    stmt = stmt.on_conflict_do_update(
        index_elements=[profiles.c.profile_id],
        set_={"version": stmt.excluded.version, "snapshot": stmt.excluded.snapshot},
        where=profiles.c.version <= stmt.excluded.version,
    )
    rows = [
        {"profile_id": p, "version": s.version, "snapshot": s.model_dump(mode="json")}
        for p, s in sorted(latest.items())
    ]
    await conn.execute(stmt, rows)


async def load_profiles(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, ProfileSnapshot]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(profiles.c.profile_id, profiles.c.snapshot).where(
            any_of(profiles.c.profile_id, wanted)
        )
    )
    return {r.profile_id: ProfileSnapshot.model_validate(r.snapshot) for r in rows}


# -- instances --------------------------------------------------------------------------
async def live_instances(
    conn: AsyncConnection, profile_ids: Iterable[str], now: datetime
) -> list[Instance]:
    """Instances an event of these customers can move: running, or still in a goal window.
    Locked, so the timer worker and the consumer never move one instance at the same time."""
    wanted = sorted(set(profile_ids))
    if not wanted:
        return []
    open_goal = and_(instances.c.goal_until > now, instances.c.converted_at.is_(None))
    rows = await conn.execute(
        select(instances)
        .where(any_of(instances.c.profile_id, wanted))
        .where(or_(instances.c.status == "active", open_goal))
        .order_by(instances.c.instance_id)
        .with_for_update()
    )
    return [Instance.from_row(r) for r in rows]


async def instances_by_id(conn: AsyncConnection, ids: Iterable[str]) -> list[Instance]:
    """Instances to move on timers; those another transaction holds are skipped (retried on the
    next pass), so the worker never waits on a consumer."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = await conn.execute(
        select(instances)
        .where(any_of(instances.c.instance_id, wanted))
        .order_by(instances.c.instance_id)
        .with_for_update(skip_locked=True)
    )
    return [Instance.from_row(r) for r in rows]


async def save_instances(conn: AsyncConnection, changed: Iterable[Instance], now: datetime) -> None:
    rows = [{**i.row(), "updated_at": now} for i in changed]
    if not rows:
        return
    rows.sort(key=lambda r: r["instance_id"])
    stmt = insert(instances)
    kept = (
        "status",
        "current_step",
        "grp",
        "waiting_event",
        "goal_until",
        "converted_at",
        "ended_at",
        "state",
        "updated_at",
        "profile_id",
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[instances.c.instance_id], set_={k: stmt.excluded[k] for k in kept}
    )
    await conn.execute(stmt, rows)


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
    rows = await conn.execute(
        select(entries.c.profile_id, entries.c.journey_id, entries.c.last_entered_at).where(
            any_of(entries.c.profile_id, wanted)
        )
    )
    for r in rows:
        out.setdefault(r.profile_id, {})[r.journey_id] = r.last_entered_at
    return out


async def record_entries(conn: AsyncConnection, made: Sequence[tuple[str, str, datetime]]) -> None:
    """(journey id, profile id, when) of each entry."""
    if not made:
        return
    latest: dict[tuple[str, str], datetime] = {}
    times: Counter[tuple[str, str]] = Counter()
    for journey_id, profile_id, at in made:
        latest[(journey_id, profile_id)] = max(at, latest.get((journey_id, profile_id), at))
        times[(journey_id, profile_id)] += 1
    stmt = insert(entries)
    stmt = stmt.on_conflict_do_update(
        index_elements=[entries.c.journey_id, entries.c.profile_id],
        set_={
            "last_entered_at": func.greatest(
                entries.c.last_entered_at, stmt.excluded.last_entered_at
            ),
            "times": entries.c.times + stmt.excluded.times,
        },
    )
    rows = [
        {"journey_id": j, "profile_id": p, "last_entered_at": at, "times": times[(j, p)]}
        for (j, p), at in sorted(latest.items())
    ]
    await conn.execute(stmt, rows)


async def segments_of(conn: AsyncConnection, profile_ids: Iterable[str]) -> dict[str, set[str]]:
    wanted = sorted(set(profile_ids))
    out: dict[str, set[str]] = {}
    if not wanted:
        return out
    rows = await conn.execute(
        select(memberships.c.profile_id, memberships.c.segment_id).where(
            any_of(memberships.c.profile_id, wanted)
        )
    )
    for r in rows:
        out.setdefault(r.profile_id, set()).add(r.segment_id)
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
async def schedule(conn: AsyncConnection, planned: Sequence[Timer]) -> None:
    """Create timers, or move an existing one (a date trigger whose date changed)."""
    if not planned:
        return
    by_id = {t.timer_id: t for t in planned}
    stmt = insert(timers)
    stmt = stmt.on_conflict_do_update(
        index_elements=[timers.c.timer_id],
        set_={"due_at": stmt.excluded.due_at, "token": stmt.excluded.token},
        where=timers.c.due_at.is_distinct_from(stmt.excluded.due_at),
    )
    rows = [
        {
            "timer_id": t.timer_id,
            "kind": t.kind,
            "due_at": t.due_at,
            "journey_id": t.journey_id,
            "instance_id": t.instance_id,
            "profile_id": t.profile_id,
            "token": t.token,
        }
        for _, t in sorted(by_id.items())
    ]
    await conn.execute(stmt, rows)


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


async def cancel(conn: AsyncConnection, timer_ids: Sequence[str]) -> None:
    if timer_ids:
        await conn.execute(delete(timers).where(any_of(timers.c.timer_id, sorted(set(timer_ids)))))


async def claim_due(
    conn: AsyncConnection, now: datetime, limit: int, held: Sequence[str]
) -> list[Any]:
    """Due timers, oldest first, locked for this transaction; rows another replica holds are
    skipped, so any number of workers drain the table side by side. Timers of paused
    journeys (`held`) stay where they are until the journey resumes."""
    query = select(timers).where(timers.c.due_at <= now)
    if held:
        query = query.where(timers.c.journey_id.not_in(list(held)))
    rows = await conn.execute(
        query.order_by(timers.c.due_at).limit(limit).with_for_update(skip_locked=True)
    )
    return list(rows)


async def pending_timers(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(timers))).scalar_one())


# -- counters ---------------------------------------------------------------------------
async def add_counters(conn: AsyncConnection, deltas: Counter[CounterKey]) -> None:
    """Last statement of a transaction, keys sorted: concurrent batches lock counter rows in
    one order and never deadlock on them."""
    if not deltas:
        return
    stmt = insert(counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            counters.c.journey_id,
            counters.c.version,
            counters.c.step_id,
            counters.c.metric,
            counters.c.label,
        ],
        set_={"n": counters.c.n + stmt.excluded.n},
    )
    rows = [
        {"journey_id": j, "version": v, "step_id": s, "metric": m, "label": lab, "n": n}
        for (j, v, s, m, lab), n in sorted(deltas.items())
        if n
    ]
    await conn.execute(stmt, rows)


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
    rows = await conn.execute(
        select(instances.c.instance_id).where(any_of(instances.c.instance_id, sorted(set(ids))))
    )
    return set(rows.scalars())
