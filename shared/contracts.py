"""Records the services exchange on the internal topics. The same pydantic models validate the
records and generate the AsyncAPI document, so the documentation cannot drift from the code."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProfileSnapshot(BaseModel):
    """A customer as the profile service knows them after applying an event."""

    model_config = ConfigDict(extra="allow")

    profile_id: str
    version: int = Field(description="Grows by one with every applied change; newer wins.")
    user_id: str | None = None
    anonymous_id: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    behaviour: dict[str, Any] = Field(default_factory=dict)
    consent: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime


class ProfileEventRecord(BaseModel):
    """`jm.profile-events`: the applied Segment message and the profile right after it."""

    event: dict[str, Any]
    profile: ProfileSnapshot


class DispatchRequest(BaseModel):
    """`jm.dispatch`: one send a journey asks for. `dispatch_id` is stable across redelivery."""

    dispatch_id: str
    profile_id: str
    channel: Literal["email", "sms", "push", "webhook"]
    message_type: str = Field(description="transactional, marketing, newsletter, ...")
    template: str
    journey_id: str
    journey_version: int
    step_id: str
    priority: int = 0
    data: dict[str, Any] = Field(default_factory=dict, description="event and journey context")
    profile: ProfileSnapshot | None = Field(
        default=None, description="The profile as the journey saw it; used if newer than ours."
    )
    requested_at: datetime


class SegmentChange(BaseModel):
    """`jm.segment-changes`: a profile entered or left a segment."""

    profile_id: str
    segment_id: str
    change: Literal["entered", "exited"]
    profile: ProfileSnapshot
    changed_at: datetime


# Lifecycle events the profile service publishes on `jm.profile-events` as ordinary track
# events inside a ProfileEventRecord, so every consumer of that topic sees them in order with
# the customer's other events.
PROFILE_MERGED = "Profile Merged"
"""properties: {"merged_profile_id": <id that disappears>, "into_profile_id": <survivor>};
`profile` is the survivor's snapshot. Move state from merged_profile_id to the survivor."""

PROFILE_ERASED = "Profile Erased"
"""properties: {"profile_id": <id>}; `profile` is a bare snapshot with `traits.erased = true`
and `version = ERASED_VERSION`. Drop everything held about that customer."""

ERASED_VERSION = 2**62
"""The version of an erased (or merged-away) profile on `jm.profiles`: higher than any real
version, so no late or replayed snapshot can bring the customer back in a projection."""
