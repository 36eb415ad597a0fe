"""Use case: apply a batch of profile events to segment membership, in the caller's transaction.

Redelivery is harmless: a record whose profile version is not newer than the one already
applied is skipped whole (no facts, no decisions), so a customer crossing a threshold enters
exactly once. Each profile is decided once per batch, with its latest snapshot and every new
fact, and only for the segments the batch's events can change.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import lifecycle, repository
from services.segmenter.catalog import Catalog, changed_paths
from services.segmenter.definitions import CompiledSegment
from services.segmenter.evaluation import OCCURRENCE, parse_time
from services.segmenter.membership import Decision, decide
from services.segmenter.repository import Changes, FactRow
from shared.cloudevents import binary_headers, child_traceparent
from shared.codec import dumps
from shared.contracts import ProfileEventRecord
from shared.kafka import OutRecord
from shared.topics import SEGMENT_CHANGES

SOURCE = "journeyman/segmenter"
ORDER_COMPLETED = "Order Completed"
_NEVER = datetime.max.replace(tzinfo=UTC)  # later than any timer


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def order_value(properties: dict[str, Any]) -> float:
    """The monetary value of an order, read as the profile service reads it."""
    for key in ("revenue", "total", "value"):
        if (number := _number(properties.get(key))) is not None:
            return number
    return 0.0


def facts_of_event(catalog: Catalog, profile_id: str, event: dict[str, Any]) -> list[FactRow]:
    """The compact rows this event adds: only for events and properties a definition reads."""
    name = event.get("event")
    if event.get("type") != "track" or name not in catalog.tracked_events:
        return []
    at = parse_time(event.get("timestamp"))
    if at is None:
        return []
    props = event.get("properties") or {}
    rows: list[FactRow] = []
    for event_name, prop in catalog.fact_keys:
        if event_name != name:
            continue
        if prop == OCCURRENCE:
            rows.append((profile_id, name, OCCURRENCE, at, None))
        elif (value := _number(props.get(prop))) is not None:
            rows.append((profile_id, name, prop, at, value))
    return rows


def change_record(
    profile_id: str,
    segment_id: str,
    kind: Literal["entered", "exited"],
    snapshot: dict[str, Any] | orjson.Fragment,
    *,
    now: datetime,
    cause: str,
    traceparent: str | None = None,
) -> OutRecord:
    """A `jm.segment-changes` record (a SegmentChange; `snapshot` is a dumped ProfileSnapshot,
    or its JSON as a Fragment when a profile's changes share it: this runs for every change).
    `cause` makes the CloudEvents id unique."""
    body = {"profile_id": profile_id, "segment_id": segment_id, "change": kind,
            "profile": snapshot, "changed_at": now}  # fmt: skip
    return OutRecord(
        SEGMENT_CHANGES,
        dumps(body),
        profile_id.encode(),
        binary_headers(
            event_id=f"{profile_id}:{segment_id}:{kind}:{cause}",
            event_type=f"journeyman.segment.{kind}",
            source=SOURCE,
            time=now,
            subject=profile_id,
            traceparent=traceparent,
        ),
    )


def decision_changes(
    decisions: Sequence[Decision],
    snapshots: dict[str, dict[str, Any]],
    now: datetime,
    *,
    cause: str | None = None,
    timers: dict[tuple[str, str], datetime] | None = None,
    traces: Mapping[str, str | None] | None = None,
) -> tuple[Changes, list[OutRecord]]:
    """The rows these decisions write and their change records.

    With `timers` (what is stored), a timer is written only where none is stored or the new
    one is earlier: a stored earlier one wakes the customer a little early, which is harmless
    (the clock decides again and re-arms), and it spares an active customer a timer write on
    every event ("not seen for 30 days" moves with each visit). A profile's changes
    continue the trace of the event that caused them (`traces`, by profile; a new trace
    without one) as one span: one random span id per profile, not two ids per record."""
    changes, out = Changes(), []
    for d in decisions:
        snap = snapshots[d.profile_id]
        version = int(snap.get("version", 0))
        trace = (
            child_traceparent((traces or {}).get(d.profile_id)) if d.entered or d.exited else None
        )
        # A paying customer changes several segments at once: their snapshot is encoded once.
        shared = orjson.Fragment(dumps(snap)) if len(d.entered) + len(d.exited) > 1 else snap
        kinds: tuple[tuple[Literal["entered", "exited"], list[str]], ...] = (
            ("entered", d.entered),
            ("exited", d.exited),
        )
        for kind, seg_ids in kinds:
            for seg_id in seg_ids:
                out.append(
                    change_record(
                        d.profile_id, seg_id, kind, shared, now=now, cause=cause or str(version),
                        traceparent=trace,
                    )
                )  # fmt: skip
        changes.entered += [(d.profile_id, s, version) for s in d.entered]
        changes.exited += [(d.profile_id, s, version) for s in d.exited]
        if timers is None:
            changes.due += [(d.profile_id, s, at) for s, at in d.timers]
            changes.cleared += [(d.profile_id, s) for s in d.cleared]
        else:
            changes.due += [(d.profile_id, s, at) for s, at in d.timers
                            if at < timers.get((d.profile_id, s), _NEVER)]  # fmt: skip
            changes.cleared += [(d.profile_id, s) for s in d.cleared if (d.profile_id, s) in timers]
    return changes, out


async def write_decisions(
    conn: AsyncConnection,
    decisions: Sequence[Decision],
    snapshots: dict[str, dict[str, Any]],
    now: datetime,
    *,
    cause: str | None = None,
) -> list[OutRecord]:
    """Store memberships, history and timers of these decisions; return the change records."""
    changes, out = decision_changes(decisions, snapshots, now, cause=cause)
    await repository.write_changes(conn, changes, now)
    return out


def decide_all(
    catalog: Catalog,
    plans: dict[str, list[CompiledSegment]],
    profiles: dict[str, dict[str, Any]],
    inputs: repository.Inputs,
    now: datetime,
) -> list[Decision]:
    return [
        decide(
            pid,
            segs,
            profiles[pid],
            inputs.facts.get(pid, {}),
            now=now,
            current=inputs.memberships[pid],
            cel_fields=catalog.cel_fields(segs),
        )
        for pid, segs in plans.items()
        if segs
    ]


def add_new_facts(
    inputs: repository.Inputs, rows: Sequence[FactRow], events: set[str], since: datetime
) -> None:
    """Facts of this batch, not stored yet, added in time order to what was read."""
    for pid, event, prop, at, value in rows:
        if pid in inputs.facts and event in events and at > since:
            series = inputs.facts[pid].setdefault((event, prop), [])
            bisect.insort(series, (at, value), key=lambda fact: fact[0])


async def decide_profiles(
    conn: AsyncConnection,
    catalog: Catalog,
    plans: dict[str, list[CompiledSegment]],
    profiles: dict[str, dict[str, Any]],
    now: datetime,
    *,
    timers_of: Sequence[str] = (),
    new_facts: Sequence[FactRow] = (),
) -> tuple[list[Decision], dict[tuple[str, str], datetime]]:
    """Load the facts, memberships (and stored timers of `timers_of`) these plans need, in one
    statement, add `new_facts` (this batch's, written with its changes) and decide; the stored
    timers come back for `decision_changes`."""
    events = {e for segs in plans.values() for s in segs for e, _ in s.fact_keys()}
    since = now - timedelta(days=catalog.longest_days)
    inputs = await repository.decision_inputs(conn, plans, events, since, timers_of=timers_of)
    add_new_facts(inputs, new_facts, events, since)
    return decide_all(catalog, plans, profiles, inputs, now), inputs.timers


async def apply_profile_events(
    conn: AsyncConnection,
    catalog: Catalog,
    batch: Sequence[tuple[ProfileEventRecord, str | None]],
    now: datetime,
) -> list[OutRecord]:
    """Apply (record, its traceparent) pairs; return the change records to publish."""
    records: dict[str, list[ProfileEventRecord]] = defaultdict(list)
    traces: dict[str, str | None] = {}
    for record, trace in batch:
        records[record.profile.profile_id].append(record)
        traces[record.profile.profile_id] = trace  # the latest record's
    touched = set(records) | lifecycle.merged_ids(r for r, _ in batch)
    stored = await repository.stored_for_update(conn, touched)
    fresh = {
        pid: [r for r in recs if r.profile.version > stored.get(pid, (-1, None))[0]]
        for pid, recs in records.items()
    }
    fresh = {pid: recs for pid, recs in fresh.items() if recs}
    full = await lifecycle.apply(conn, [r for recs in fresh.values() for r in recs])
    fresh = {pid: recs for pid, recs in fresh.items() if pid not in full.gone}

    latest = {
        pid: max(recs, key=lambda r: r.profile.version).profile for pid, recs in fresh.items()
    }
    fact_rows: list[FactRow] = []
    orders: dict[str, tuple[datetime, int, float]] = {}
    for pid, recs in fresh.items():
        for r in recs:
            fact_rows += facts_of_event(catalog, pid, r.event)
            if r.event.get("type") == "track" and r.event.get("event") == ORDER_COMPLETED:
                at = parse_time(r.event.get("timestamp")) or now
                last, count, money = orders.get(pid, (at, 0, 0.0))
                value = order_value(r.event.get("properties") or {})
                orders[pid] = (max(last, at), count + 1, money + value)

    dumped = {pid: snap.model_dump(mode="json") for pid, snap in latest.items()}
    plans = {
        pid: catalog.ordered
        if pid not in stored or pid in full.merged_into
        else catalog.affected_by(
            [str(r.event.get("event")) for r in recs if r.event.get("type") == "track"],
            changed_paths(catalog.watched_paths, stored[pid][1], dumped[pid]),
        )
        for pid, recs in fresh.items()
    }
    known = [pid for pid in plans if pid in stored] if catalog.timed else []
    decisions, timers = await decide_profiles(
        conn, catalog, plans, dumped, now, timers_of=known, new_facts=fact_rows
    )
    changes, out = decision_changes(decisions, dumped, now, timers=timers, traces=traces)
    changes.facts, changes.purchases = fact_rows, [(p, *o) for p, o in orders.items()]
    changes.profiles = [(pid, snap.version, dumped[pid]) for pid, snap in latest.items()]
    await repository.write_changes(conn, changes, now)
    return out
