"""Use case: apply a batch of customer events. Runs inside the caller's transaction and returns
the records to publish through the outbox; it never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile import repository
from services.profile.behaviour import ProfileState, apply_event
from services.profile.identity import lookup_keys, resolve
from shared.cloudevents import binary_headers, child_traceparent
from shared.codec import dumps
from shared.contracts import ProfileSnapshot
from shared.events import Event
from shared.kafka import OutRecord
from shared.topics import PROFILE_EVENTS, PROFILES

SOURCE = "journeyman/profile"


@dataclass(frozen=True)
class IncomingEvent:
    event: Event
    traceparent: str | None = None


def snapshot(state: ProfileState) -> ProfileSnapshot:
    assert state.updated_at is not None
    return ProfileSnapshot(
        profile_id=state.profile_id,
        version=state.version,
        user_id=state.user_id,
        anonymous_id=state.anonymous_id,
        traits=state.traits,
        behaviour=state.behaviour,
        consent=state.consent,
        updated_at=state.updated_at,
    )


async def apply_events(conn: AsyncConnection, batch: Sequence[IncomingEvent]) -> list[OutRecord]:
    """Dedupe by messageId, resolve identities, fold events into profiles, append the timeline."""
    unique = list({item.event.message_id: item for item in batch}.values())
    fresh = await repository.claim_messages(conn, [i.event.message_id for i in unique])
    todo = [item for item in unique if item.event.message_id in fresh]
    if not todo:
        return []
    events = [item.event for item in todo]
    known = await repository.owners_of(conn, (k for e in events for k in lookup_keys(e)))
    resolution = resolve(events, known)
    actual = await repository.add_identities(conn, resolution.new_identities)
    if any(actual[k] != v for k, v in resolution.new_identities.items()):
        # Another replica recorded one of these identities first: resolve again against it.
        resolution = resolve(events, {**known, **actual})
    states = await repository.lock_profiles(conn, resolution.profile_of_event)
    out: list[OutRecord] = []
    timeline_rows = []
    for item, profile_id in zip(todo, resolution.profile_of_event, strict=True):
        event = item.event
        state = states.setdefault(profile_id, ProfileState(profile_id))
        apply_event(state, event)
        wire = event.to_wire()
        timeline_rows.append(
            {
                "profile_id": profile_id,
                "timestamp": event.timestamp,
                "message_id": event.message_id,
                "type": event.type,
                "event": getattr(event, "event", None) or getattr(event, "name", None),
                "payload": wire,
            }
        )
        record = {"event": wire, "profile": snapshot(state).model_dump(mode="json")}
        out.append(
            OutRecord(
                PROFILE_EVENTS,
                dumps(record),
                profile_id.encode(),
                binary_headers(
                    event_id=event.message_id,
                    event_type=f"journeyman.profile-event.{event.type}",
                    source=SOURCE,
                    time=event.timestamp,
                    subject=profile_id,
                    traceparent=child_traceparent(item.traceparent),
                ),
            )
        )
    await repository.save_profiles(conn, states.values())
    await repository.append_timeline(conn, timeline_rows)
    for state in states.values():
        out.append(
            OutRecord(
                PROFILES,
                dumps(snapshot(state).model_dump(mode="json")),
                state.profile_id.encode(),
                binary_headers(
                    event_id=f"{state.profile_id}:{state.version}",
                    event_type="journeyman.profile",
                    source=SOURCE,
                    time=state.updated_at,
                    subject=state.profile_id,
                ),
            )
        )
    return out
