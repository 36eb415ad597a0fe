"""The records the profile service publishes, built as plain dicts encoded once by orjson (no
pydantic dump per event on the hot path). Their shape is `shared.contracts`: ProfileSnapshot on
`jm.profiles`, ProfileEventRecord on `jm.profile-events`, with the lifecycle events
`Profile Merged`, `Profile Erased` and `Consent Changed` as ordinary track events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.profile.behaviour import ProfileState
from shared.cloudevents import Headers, binary_headers, child_traceparent
from shared.codec import dumps
from shared.contracts import ERASED_VERSION, PROFILE_ERASED, PROFILE_MERGED
from shared.events import EVENT_TYPES
from shared.kafka import OutRecord
from shared.topics import PROFILE_EVENTS, PROFILES

SOURCE = "journeyman/profile"
_SOURCE = SOURCE.encode()
CONSENT_CHANGED = "Consent Changed"
# `ce_type` of a `jm.profile-events` record, by the applied message's type
PROFILE_EVENT_TYPES = {t: f"journeyman.profile-event.{t}".encode() for t in EVENT_TYPES}


def fast_headers(
    event_id: str, event_type: bytes, time: datetime, subject: str, traceparent: str | None
) -> Headers:
    """`shared.cloudevents.binary_headers` for the per-event hot path: the same headers, built
    without its general-purpose work (one record per consumed event takes this path)."""
    trace = child_traceparent(traceparent)
    stamp = time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", _SOURCE),
        ("ce_type", event_type),
        ("ce_time", stamp.encode()),
        ("content-type", b"application/json"),
        ("traceparent", trace.encode()),
        ("ce_subject", subject.encode()),
    ]


def snapshot(state: ProfileState) -> dict[str, Any]:
    """The ProfileSnapshot of a state, as JSON-ready data."""
    return {
        "profile_id": state.profile_id,
        "version": state.version,
        "user_id": state.user_id,
        "anonymous_id": state.anonymous_id,
        "traits": state.traits,
        "behaviour": state.behaviour,
        "consent": state.consent,
        "updated_at": state.updated_at,
    }


def profile_event(
    wire: dict[str, Any], state: ProfileState, time: datetime, traceparent: str | None
) -> OutRecord:
    """`jm.profile-events`: the applied message and the profile right after it."""
    return OutRecord(
        PROFILE_EVENTS,
        dumps({"event": wire, "profile": snapshot(state)}),
        state.profile_id.encode(),
        binary_headers(
            event_id=str(wire["messageId"]),
            event_type=f"journeyman.profile-event.{wire['type']}",
            source=SOURCE,
            time=time,
            subject=state.profile_id,
            traceparent=child_traceparent(traceparent),
        ),
    )


def profile_record(state: ProfileState, encoded: bytes | None = None) -> OutRecord:
    """`jm.profiles`: the latest profile (compacted by profile id). `encoded` is the state's
    snapshot when the caller has already encoded it (for the profile event it last applied)."""
    body = encoded if encoded is not None else dumps(snapshot(state))
    return _profile_out(state.profile_id, body, state.version, state.updated_at)


def _profile_out(profile_id: str, body: bytes, version: int, time: datetime | None) -> OutRecord:
    return OutRecord(
        PROFILES,
        body,
        profile_id.encode(),
        binary_headers(
            event_id=f"{profile_id}:{version}",
            event_type="journeyman.profile",
            source=SOURCE,
            time=time,
            subject=profile_id,
        ),
    )


def lifecycle_event(
    name: str, message_id: str, state: ProfileState, properties: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """A track event the profile service itself emits about a customer."""
    who = {"userId": state.user_id} if state.user_id else {"anonymousId": state.profile_id}
    return {
        "type": "track",
        "event": name,
        "messageId": message_id,
        **who,
        "timestamp": at.isoformat(),
        "properties": properties,
        "context": {"library": {"name": SOURCE}},
    }


def merged_records(
    gone: ProfileState, survivor: ProfileState, at: datetime, traceparent: str | None
) -> tuple[dict[str, Any], list[OutRecord]]:
    """`Profile Merged` (with the survivor's snapshot) and the tombstone of the merged-away id."""
    wire = lifecycle_event(
        PROFILE_MERGED,
        f"merge:{gone.profile_id}:{survivor.profile_id}",
        survivor,
        {"merged_profile_id": gone.profile_id, "into_profile_id": survivor.profile_id},
        at,
    )
    tombstone = {
        "profile_id": gone.profile_id,
        "version": ERASED_VERSION,
        "traits": {},
        "behaviour": {},
        "consent": {},
        "updated_at": at,
        "merged_into": survivor.profile_id,
    }
    return wire, [
        profile_event(wire, survivor, at, traceparent),
        _profile_out(gone.profile_id, dumps(tombstone), ERASED_VERSION, at),
    ]


def erased_records(profile_ids: list[str], at: datetime) -> list[OutRecord]:
    """For each erased id: `Profile Erased` with a bare snapshot, and the erased snapshot."""
    out = []
    for profile_id in profile_ids:
        bare = ProfileState(
            profile_id, version=ERASED_VERSION, traits={"erased": True}, updated_at=at
        )
        wire = lifecycle_event(
            PROFILE_ERASED, f"erase:{profile_id}", bare, {"profile_id": profile_id}, at
        )
        out.append(profile_event(wire, bare, at, None))
        out.append(profile_record(bare))
    return out
