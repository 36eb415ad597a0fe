"""Use case: apply a batch of customer events. Runs inside the caller's transaction and returns
the records to publish through the outbox; it never commits.

Concurrency: profiles are locked FOR UPDATE in id order before they change, so two replicas
never lose an update. Identities are claimed with INSERT .. ON CONFLICT: when another replica
recorded one of ours first, or merged or erased a profile we read, the batch's work is rolled
back to a savepoint and resolved again against what that replica committed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile import repository
from services.profile.behaviour import ProfileState, apply_event
from services.profile.consent import ConsentChange
from services.profile.identity import Merge, lookup_keys, resolve
from services.profile.merge import merge_states
from services.profile.publish import (
    PROFILE_EVENT_TYPES,
    fast_headers,
    merged_records,
    profile_record,
    snapshot,
)
from services.profile.repository import TimelineRow
from shared.codec import dumps
from shared.events import Event
from shared.kafka import OutRecord
from shared.topics import PROFILE_EVENTS

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class IncomingEvent:
    event: Event
    traceparent: str | None = None


class IdentityRace(Exception):
    """Another transaction changed identities this batch read; resolve again."""


def history_rows(profile_id: str, changes: Sequence[ConsentChange]) -> list[dict[str, Any]]:
    return [
        {**c.as_dict(), "profile_id": profile_id, "changed_at": datetime.fromisoformat(c.at)}
        for c in changes
    ]


def timeline_row(profile_id: str, wire: dict[str, Any], payload: str) -> TimelineRow:
    return TimelineRow(
        profile_id,
        datetime.fromisoformat(str(wire["timestamp"]).replace("Z", "+00:00")),
        wire["messageId"],
        wire["type"],
        wire.get("event") or wire.get("name"),
        payload,
    )


async def apply_events(conn: AsyncConnection, batch: Sequence[IncomingEvent]) -> list[OutRecord]:
    """Dedupe by messageId, resolve identities (merging profiles that prove to be one person),
    fold events into profiles, append the timeline and the consent history."""
    unique = list({item.event.message_id: item for item in batch}.values())
    for _ in range(MAX_ATTEMPTS):
        try:
            async with conn.begin_nested():
                return await _apply_once(conn, unique)
        except IdentityRace:
            continue
    raise IdentityRace(f"identities kept changing under {MAX_ATTEMPTS} attempts")


async def _apply_once(conn: AsyncConnection, unique: Sequence[IncomingEvent]) -> list[OutRecord]:
    fresh = await repository.claim_messages(conn, [i.event.message_id for i in unique])
    todo = [item for item in unique if item.event.message_id in fresh]
    if not todo:
        return []
    events = [item.event for item in todo]
    keys = [lookup_keys(e) for e in events]
    known = await repository.owners_of(conn, (k for ks in keys for k in ks))
    states = await repository.lock_profiles(conn, known.values())
    if any(p not in states for p in known.values()):
        raise IdentityRace("a profile was merged or erased meanwhile")
    users = {p: s.user_id for p, s in states.items()}
    resolution = resolve(events, known, users=users, keys=keys)
    wanted = resolution.new_identities
    if await repository.insert_identities(conn, wanted) != set(wanted):
        raise IdentityRace("another replica recorded one of these identities first")

    merges: dict[int, list[Merge]] = defaultdict(list)
    for merge in resolution.merges:
        merges[merge.at].append(merge)
    fold = _Fold(states)
    for index, (item, profile_id) in enumerate(zip(todo, resolution.profile_of_event, strict=True)):
        for merge in merges.get(index, ()):
            fold.merge(merge, item)
        fold.apply(item, profile_id)
    into, timeline, history, out = fold.into, fold.timeline, fold.history, fold.out

    def final(profile_id: str) -> str:
        while profile_id in into:
            profile_id = into[profile_id]
        return profile_id

    changed = [state for profile_id, state in states.items() if profile_id in fold.touched]
    await repository.apply_merges(conn, {gone: final(gone) for gone in into})
    await repository.save_profiles(conn, changed)
    if into:
        timeline = [row._replace(profile_id=final(row.profile_id)) for row in timeline]
        for row in history:
            row["profile_id"] = final(row["profile_id"])
    await repository.append_timeline(conn, timeline)
    await repository.add_consent_history(conn, history)
    out.extend(profile_record(state, fold.snapshots.get(state.profile_id)) for state in changed)
    return out


@dataclass
class _Fold:
    """A batch's events folded into the locked states, in order, with what they produce."""

    states: dict[str, ProfileState]
    into: dict[str, str] = field(default_factory=dict)  # merged-away id -> survivor id
    touched: set[str] = field(default_factory=set)  # a profile only read is left as it is
    out: list[OutRecord] = field(default_factory=list)
    timeline: list[TimelineRow] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, bytes] = field(default_factory=dict)  # latest, encoded once for both

    def merge(self, merge: Merge, item: IncomingEvent) -> None:
        gone = self.states.pop(merge.merged)
        survivor = merge_states(self.states[merge.into], gone)
        self.into[gone.profile_id] = survivor.profile_id
        self.touched.add(survivor.profile_id)
        self.snapshots.pop(gone.profile_id, None)
        self.snapshots.pop(survivor.profile_id, None)
        wire, records = merged_records(gone, survivor, item.event.timestamp, item.traceparent)
        self.timeline.append(timeline_row(survivor.profile_id, wire, dumps(wire).decode()))
        self.out.extend(records)

    def apply(self, item: IncomingEvent, profile_id: str) -> None:
        event = item.event
        state = self.states.get(profile_id)
        if state is None:
            state = self.states[profile_id] = ProfileState(profile_id)
        changes = apply_event(state, event)
        self.touched.add(profile_id)
        self.history.extend(history_rows(profile_id, changes))
        wire = event.wire_json()
        name = getattr(event, "event", None) or getattr(event, "name", None)
        self.timeline.append(
            TimelineRow(
                profile_id, event.timestamp, event.message_id, event.type, name, wire.decode()
            )
        )
        self.snapshots[profile_id] = profile = dumps(snapshot(state))
        self.out.append(_profile_event(wire, profile, state, event, item.traceparent))


def _profile_event(
    wire: bytes, profile: bytes, state: ProfileState, event: Event, traceparent: str | None
) -> OutRecord:
    """`jm.profile-events` from the wire form and the snapshot, each encoded once (the wire
    form is also the timeline payload, the snapshot also the `jm.profiles` record)."""
    return OutRecord(
        PROFILE_EVENTS,
        b'{"event":' + wire + b',"profile":' + profile + b"}",
        state.profile_id.encode(),
        fast_headers(
            event.message_id, PROFILE_EVENT_TYPES[event.type], event.timestamp, state.profile_id,
            traceparent,
        ),
    )  # fmt: skip
