"""Journey evaluation with no I/O: which journeys an event starts, and what their steps ask for.

Instance and dispatch ids are derived from the journey, version, customer and the triggering
message, so a redelivered event maps to the same instance and the same dispatch id, which the
database and the channels service then refuse to act on twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.journey.dsl import Journey, SendStep
from shared.cel import Condition
from shared.contracts import DispatchRequest, ProfileSnapshot

_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4a8e-9d57-3b7c1b7f0a11")


@dataclass(frozen=True)
class CompiledJourney:
    journey: Journey
    condition: Condition | None

    @classmethod
    def of(cls, journey: Journey) -> CompiledJourney:
        cond = journey.trigger.condition
        return cls(journey, Condition(cond) if cond else None)


@dataclass(frozen=True)
class Entry:
    """A journey instance to start."""

    instance_id: str
    journey: Journey
    profile_id: str
    entry_key: str


def instance_id(journey: Journey, profile_id: str, entry_key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{journey.id}|{journey.version}|{profile_id}|{entry_key}"))


def entries_for(
    journeys: Sequence[CompiledJourney], event: dict[str, Any], profile: ProfileSnapshot
) -> list[Entry]:
    """Journeys whose trigger this event satisfies."""
    name = event.get("event")
    if event.get("type") != "track" or not name:
        return []
    variables: dict[str, Any] | None = None
    found = []
    for compiled in journeys:
        journey = compiled.journey
        if not journey.enabled or journey.trigger.event != name:
            continue
        if compiled.condition is not None:
            variables = variables or {"event": event, "profile": profile.model_dump(mode="json")}
            if not compiled.condition.holds(variables):
                continue
        key = str(event["messageId"])
        found.append(
            Entry(instance_id(journey, profile.profile_id, key), journey, profile.profile_id, key)
        )
    return found


def dispatches_for(
    entry: Entry, event: dict[str, Any], profile: ProfileSnapshot, now: datetime
) -> list[DispatchRequest]:
    """Run an instance's steps from the start; sends become dispatch requests."""
    out = []
    for step in entry.journey.steps:
        if isinstance(step, SendStep):
            out.append(
                DispatchRequest(
                    dispatch_id=f"{entry.instance_id}:{step.id}",
                    profile_id=entry.profile_id,
                    channel=step.channel,
                    message_type=step.message_type,
                    template=step.template,
                    journey_id=entry.journey.id,
                    journey_version=entry.journey.version,
                    step_id=step.id,
                    priority=entry.journey.priority,
                    data={
                        "event": event,
                        "journey": {"id": entry.journey.id, "name": entry.journey.name},
                    },
                    profile=profile,
                    requested_at=now,
                )
            )
    return out
