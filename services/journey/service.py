"""Use cases of the journey service. Each runs in the caller's transaction and returns the
records for the outbox; none commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey import repository, timing
from services.journey.compiled import CompiledJourney
from services.journey.dsl import DateTrigger, ScheduleTrigger
from services.journey.engine import Engine, slim
from services.journey.registry import Registry
from services.journey.state import Timer
from services.journey.work import Work, fresh_ids
from shared.contracts import (
    PROFILE_ERASED,
    PROFILE_MERGED,
    ProfileEventRecord,
    ProfileSnapshot,
    SegmentChange,
)
from shared.customer_time import customer_zone
from shared.kafka import OutRecord


async def apply_profile_events(
    conn: AsyncConnection,
    registry: Registry,
    engine: Engine,
    batch: Sequence[tuple[ProfileEventRecord, str | None]],
    now: datetime,
    *,
    dates: dict[tuple[str, str], datetime],
) -> list[OutRecord]:
    """Events move running instances (goals, exits, waits) and start new ones (triggers).
    `dates` gets the date-trigger timers written, for `Registry.dates_committed`."""
    # Only events a journey knows can move anything; only they need deduplicating.
    keyed = [
        (str(r.event.get("messageId") or id(r)), (r, tp))
        for r, tp in batch
        if _relevant(registry, r.event)
    ]
    new = await repository.mark_seen(conn, [k for k, _ in keyed])
    fresh: list[tuple[ProfileEventRecord, str | None]] = fresh_ids(keyed, new)
    dated = [r.profile for r, _ in batch] if registry.date_triggered() else []
    if not fresh:
        moved = _moved_dates(registry, engine, dated, now, {}, written=dates)
        snapshots = _snapshots_to_save(dated, moved)
        await repository.write(conn, repository.Writes(timers=moved, profiles=snapshots), now)
        return []
    for record, _ in fresh:
        await _lifecycle(conn, record)
    work = Work(registry, engine, now)
    pids = {r.profile.profile_id for r, _ in fresh}
    work.hold(await repository.live_instances(conn, pids, now))
    entering = {
        r.profile.profile_id
        for r, _ in fresh
        if registry.event_triggered(str(r.event.get("event")))
    }
    await work.load_facts(conn, entering)
    for record, traceparent in fresh:
        event, profile = record.event, record.profile
        name = event.get("event")
        if event.get("type") != "track" or not name:
            continue
        for inst in list(work.live(profile.profile_id)):
            cj, held = work.compiled(inst), False
            if cj is None:
                cj, held = work.held(inst), True
            if cj is not None and cj.listens_to(name):
                engine.on_event(cj, inst, event, profile, now, work.fx, held)
                work.touch(inst)
        trigger = slim(event)
        for cj in registry.event_triggered(name):
            condition = getattr(cj.journey.trigger, "condition", None)
            variables: dict[str, Any] = {"event": event}
            if cj.uses(condition, "profile"):
                variables["profile"] = work.fx.doc(profile)
            if cj.holds(condition, variables):
                work.try_enter(cj, profile, str(event.get("messageId")), trigger, traceparent)
    last = {pid: f.last_entry for pid, f in work.facts.items()}
    latest = {
        r.profile.profile_id: r.profile for r, _ in fresh if r.event.get("event") != PROFILE_ERASED
    }
    # Timers run on the stored snapshot: keep it fresh for customers with instances (and for
    # those whose date timer moved), in one statement.
    keep = [latest[p] for p in work.by_profile if p in latest]
    moved = _moved_dates(registry, engine, dated, now, last, written=dates)
    # Date timers and snapshots in the same statement as the steps' writes.
    return await work.flush(conn, moved, profiles=_snapshots_to_save(dated, moved, keep))


def _relevant(registry: Registry, event: dict[str, Any]) -> bool:
    name = event.get("event")
    if name in (PROFILE_MERGED, PROFILE_ERASED):
        return True
    return event.get("type") == "track" and bool(name) and registry.concerns(str(name))


def _moved_dates(
    registry: Registry,
    engine: Engine,
    snapshots: Sequence[ProfileSnapshot],
    now: datetime,
    last: dict[str, dict[str, datetime]],
    *,
    written: dict[tuple[str, str], datetime],
) -> list[Timer]:
    """Date-trigger timers of the batch's customers that moved (only those are written), added
    to the transaction's `written`: remembered as planned once it commits."""
    planned = date_timers(registry, snapshots, now, last, engine.time_scale) if snapshots else []
    moved = [
        t
        for t in planned
        if registry.planned_dates.get((t.journey_id, t.profile_id or "")) != t.due_at
    ]
    written.update({(t.journey_id, t.profile_id or ""): t.due_at for t in moved})
    return moved


def _snapshots_to_save(
    snapshots: Sequence[ProfileSnapshot],
    moved: Sequence[Timer],
    keep: Sequence[ProfileSnapshot] = (),
) -> list[ProfileSnapshot]:
    """The snapshots a date timer that moved needs when it fires, and those of `keep`."""
    wanted = {t.profile_id for t in moved}
    return [*keep, *(s for s in snapshots if s.profile_id in wanted)]


async def _lifecycle(conn: AsyncConnection, record: ProfileEventRecord) -> None:
    """Profile Merged moves a customer's instances; Profile Erased drops them."""
    name = record.event.get("event")
    props = record.event.get("properties") or {}
    if name == PROFILE_MERGED and props.get("merged_profile_id") and props.get("into_profile_id"):
        await repository.move_profile(
            conn, str(props["merged_profile_id"]), str(props["into_profile_id"])
        )
    elif name == PROFILE_ERASED:
        await repository.erase_profile(
            conn, str(props.get("profile_id") or record.profile.profile_id)
        )


async def apply_segment_changes(
    conn: AsyncConnection,
    registry: Registry,
    engine: Engine,
    batch: Sequence[SegmentChange],
    now: datetime,
) -> list[OutRecord]:
    """Segment changes end instances (exit criteria) and start journeys (segment triggers)."""
    keyed = [
        (f"seg:{c.profile_id}:{c.segment_id}:{c.change}:{c.changed_at.isoformat()}", c)
        for c in batch
    ]
    fresh: list[SegmentChange] = fresh_ids(
        keyed, await repository.mark_seen(conn, [k for k, _ in keyed])
    )
    if not fresh:
        return []
    await repository.apply_memberships(
        conn, {(c.profile_id, c.segment_id): c.change == "entered" for c in fresh}
    )
    work = Work(registry, engine, now)
    pids = {c.profile_id for c in fresh}
    work.hold(await repository.live_instances(conn, pids, now))
    await work.load_facts(conn, pids)
    for change in fresh:
        facts = work.facts[change.profile_id]
        if change.change == "entered":
            facts.segments.add(change.segment_id)
        else:
            facts.segments.discard(change.segment_id)
        for inst in list(work.live(change.profile_id)):
            cj = work.compiled(inst) or work.held(inst)
            if cj is not None and inst.active:
                engine.on_segment(cj, inst, change.segment_id, change.change, now, work.fx)
                work.touch(inst)
        trigger = {
            "type": "segment",
            "segment": change.segment_id,
            "change": change.change,
            "timestamp": change.changed_at.isoformat(),
            "properties": {},
        }
        key = f"segment:{change.segment_id}:{change.change}:{change.changed_at.isoformat()}"
        for cj in registry.segment_triggered(change.segment_id, change.change):
            work.try_enter(cj, change.profile, key, trigger)
    return await work.flush(conn, profiles=[c.profile for c in fresh])


def date_timers(
    registry: Registry,
    snapshots: Sequence[ProfileSnapshot],
    now: datetime,
    last_entry: dict[str, dict[str, datetime]],
    scale: float = 1.0,
) -> list[Timer]:
    """Date-trigger timers of these customers: the next occurrence of each journey's date
    not entered yet (an occurrence already run is never scheduled again)."""
    journeys = registry.date_triggered()
    if not journeys:
        return []
    latest = {s.profile_id: s for s in snapshots}
    out = []
    for cj in journeys:
        for pid, snapshot in latest.items():
            last = last_entry.get(pid, {}).get(cj.journey.id)
            since = max(now, last + timedelta(days=1)) if last else now
            occurrence = next_date_of(cj, snapshot, since)
            if occurrence is None:
                continue
            due = occurrence
            if scale != 1.0 and due > now:
                due = now + (due - now) * scale  # the demo's compressed time
            token = occurrence.date().isoformat()
            out.append(
                Timer(
                    f"date:{cj.journey.id}:{pid}",
                    "date",
                    due,
                    cj.journey.id,
                    profile_id=pid,
                    token=token,
                )
            )
    return out


def next_date_of(
    cj: CompiledJourney, snapshot: ProfileSnapshot, since: datetime
) -> datetime | None:
    """`next_date` of a snapshot, remembered per journey version for the (date, time zone)
    traits it reads: customers sharing them, and the same customer again, cost one lookup.

    A remembered occurrence still answers a later `since` while it is at least two days
    after it (no time zone moves a local date that far): the occurrences are a fixed
    sequence, and the first one on or after the earlier day is then also the first on or
    after the later one. None (a one-off date past) is not remembered."""
    trigger = cj.journey.trigger
    assert isinstance(trigger, DateTrigger)
    traits = snapshot.traits
    day, zone = traits.get(trigger.date_attribute), traits.get("timezone")
    profile = {"traits": traits}  # all next_date reads (the date and the time zone traits)
    if not (isinstance(day, str | None) and isinstance(zone, str | None)):
        return next_date(cj, profile, since)
    memo = cj.memo
    key = (day, zone)
    hit = memo.get(key)
    if hit is not None and hit[0] <= since and hit[1] - since >= timedelta(days=2):
        return hit[1]
    found = next_date(cj, profile, since)
    if found is not None:
        if len(memo) > 100_000:
            memo.clear()
        memo[key] = since, found
    return found


def next_date(cj: CompiledJourney, profile: dict[str, Any], now: datetime) -> datetime | None:
    trigger = cj.journey.trigger
    assert isinstance(trigger, DateTrigger)
    day = timing.trait_date(profile, trigger.date_attribute)
    if day is None:
        return None
    zone = customer_zone(profile)
    return timing.next_occurrence(day, trigger.offset_days, trigger.at, zone, now, trigger.yearly)


def schedule_timers(registry: Registry, now: datetime) -> list[Timer]:
    """The next run of every scheduled journey (created only when missing)."""
    out = []
    for cj in registry.scheduled():
        trigger = cj.journey.trigger
        assert isinstance(trigger, ScheduleTrigger)
        due = timing.next_cron(trigger.schedule, now, trigger.timezone)
        out.append(
            Timer(
                f"schedule:{cj.journey.id}", "schedule", due, cj.journey.id, token=due.isoformat()
            )
        )
    return out
