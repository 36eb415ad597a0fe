"""Use case: fire the durable timers that are due — waits ending, date triggers, schedule
runs — in one transaction per batch. Runs in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey import repository
from services.journey.dsl import ScheduleTrigger
from services.journey.engine import Engine, instance_id
from services.journey.registry import Registry
from services.journey.repository import Due
from services.journey.service import next_date_of, schedule_timers
from services.journey.state import Profile, Timer
from services.journey.work import Work
from shared.contracts import ProfileSnapshot
from shared.kafka import OutRecord


@dataclass
class Fired:
    records: list[OutRecord] = field(default_factory=list)
    claimed: int = 0
    fired: int = 0
    lateness_s: list[float] = field(default_factory=list)


def _bare(profile_id: str, now: datetime) -> ProfileSnapshot:
    return ProfileSnapshot(profile_id=profile_id, version=0, updated_at=now)


async def fire_due(
    conn: AsyncConnection, registry: Registry, engine: Engine, now: datetime, limit: int
) -> Fired:
    held = [j for j in registry.status if not registry.running(j)]
    due = await repository.claim_due(conn, now, limit, held)
    out = Fired(claimed=len(due))
    if not due:
        return out
    work = Work(registry, engine, now)
    steps = [t for t in due if t.kind == "step"]
    others = [t for t in due if t.kind != "step"]
    done: list[str] = []
    if steps:
        out.fired += await _waits(conn, work, steps, done)
    rescheduled = await _entries(conn, work, others, now)
    done += [t.timer_id for t in others]
    out.lateness_s = [
        *work.fx.lateness_s,
        *[max((now - t.due_at).total_seconds(), 0.0) for t in others],
    ]
    out.fired += len(others)
    out.records = await work.flush(conn, rescheduled, cancelled=done)
    return out


async def _waits(conn: AsyncConnection, work: Work, steps: list[Due], done: list[str]) -> int:
    """Waits ending: the batch's instances and profiles in two statements, then the pure
    engine on each in memory; `done` gets the timers to delete. Returns how many fired."""
    registry, engine, now = work.registry, work.engine, work.now
    wanted = [t.instance_id for t in steps if t.instance_id]
    loaded = await repository.instances_by_id(conn, wanted)
    work.hold(loaded)
    held = work.instances
    missing = await repository.existing_instances(conn, [i for i in wanted if i not in held])
    profiles = await repository.load_stored_profiles(conn, {i.profile_id for i in loaded})
    fired = 0
    for timer in steps:
        inst = held.get(timer.instance_id) if timer.instance_id else None
        if inst is None:
            if timer.instance_id not in missing:
                done.append(timer.timer_id)  # the instance is gone (erased): drop its timer
            continue  # held by a consumer right now: fire on the next pass
        cj = work.compiled(inst)
        if cj is None:
            if registry.get(inst.journey_id, inst.version) is not None:
                done.append(timer.timer_id)  # archived meanwhile: nothing left to do
            continue  # a version this replica has not loaded yet: the next pass
        done.append(timer.timer_id)
        profile: Profile = profiles.get(inst.profile_id) or _bare(inst.profile_id, now)
        engine.on_timer(cj, inst, timer.token or "", timer.due_at, profile, now, work.fx)
        work.touch(inst)
        fired += 1
    return fired


async def _entries(
    conn: AsyncConnection, work: Work, timers: list[Due], now: datetime
) -> list[Timer]:
    """Date triggers and schedule runs start instances; each plans its next occurrence."""
    if not timers:
        return []
    registry = work.registry
    members: dict[str, list[str]] = {}
    wanted: set[str] = set()
    for t in timers:
        cj = registry.current(t.journey_id)
        if t.kind == "date" and t.profile_id:
            wanted.add(t.profile_id)
        elif t.kind == "schedule" and cj and isinstance(cj.journey.trigger, ScheduleTrigger):
            members[t.timer_id] = await repository.segment_members(conn, cj.journey.trigger.segment)
            wanted |= set(members[t.timer_id])
    work.hold(await repository.live_instances(conn, wanted, now))
    await work.load_facts(conn, wanted)
    profiles = await repository.load_profiles(conn, wanted)
    candidates, already = await _entered_dates(conn, registry, timers)
    again: list[Timer] = []
    for t in timers:
        cj = registry.current(t.journey_id)
        if cj is None or not cj.journey.enabled or not registry.running(t.journey_id):
            continue
        trigger = {"type": t.kind, "timestamp": t.due_at.isoformat(), "properties": {}}
        if t.kind == "date" and t.profile_id in profiles:
            profile = profiles[t.profile_id]
            if candidates.get(t.timer_id) not in already:
                work.try_enter(cj, profile, f"date:{t.token}", trigger)
            following = next_date_of(cj, profile, now + timedelta(days=1))
            if following is not None:
                again.append(
                    Timer(
                        t.timer_id,
                        "date",
                        following,
                        t.journey_id,
                        profile_id=t.profile_id,
                        token=following.date().isoformat(),
                    )
                )
        elif t.kind == "schedule":
            for pid in members.get(t.timer_id, []):
                if pid in profiles:
                    work.try_enter(cj, profiles[pid], f"schedule:{t.token}", trigger)
            again += schedule_timers_for(registry, t.journey_id, now)
    return again


async def _entered_dates(
    conn: AsyncConnection, registry: Registry, timers: list[Due]
) -> tuple[dict[str, str], set[str]]:
    """A date occurrence already entered (a timer planned again after it fired) is not re-run:
    the instance each date timer would start, and those that exist."""
    candidates = {}
    for t in timers:
        cj = registry.current(t.journey_id)
        if t.kind == "date" and t.profile_id and cj:
            j = cj.journey
            candidates[t.timer_id] = instance_id(j.id, j.version, t.profile_id, f"date:{t.token}")
    return candidates, await repository.existing_instances(conn, list(candidates.values()))


def schedule_timers_for(registry: Registry, journey_id: str, now: datetime) -> list[Timer]:
    return [t for t in schedule_timers(registry, now) if t.journey_id == journey_id]
