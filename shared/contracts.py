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
