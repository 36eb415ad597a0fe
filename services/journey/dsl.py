"""The marketers' journey DSL as typed models. The JSON Schema editors use is generated from
these models, so the file format and its documentation cannot disagree.

A journey: a trigger, entry rules, steps, exit criteria and a goal. Graph rules that need the
whole file (targets exist, loops go through a guarded goto, every step is reachable) are in
`services.journey.graph`, so each problem can point at its own line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from services.journey.dsl_steps import (
    BranchStep,
    ExitStep,
    GotoStep,
    Identifier,
    SendStep,
    SplitStep,
    Step,
    Strict,
    TimeOfDay,
    UpdateProfileStep,
    WaitForEventStep,
    WaitStep,
    WebhookStep,
)
from services.journey.durations import Duration
from shared.cel_check import JOURNEY_VARIABLES, condition_checker

__all__ = [
    "BranchStep",
    "DateTrigger",
    "EntryRules",
    "EventTrigger",
    "ExitCriterion",
    "ExitStep",
    "Goal",
    "GotoStep",
    "Journey",
    "ScheduleTrigger",
    "SegmentTrigger",
    "SendStep",
    "SplitStep",
    "Step",
    "Trigger",
    "UpdateProfileStep",
    "WaitForEventStep",
    "WaitStep",
    "WebhookStep",
]


class EventTrigger(Strict):
    """Start when a customer does something, optionally only when a CEL condition holds."""

    event: str = Field(description="Track event name, e.g. 'Order Completed'.")
    condition: str | None = Field(
        default=None,
        description="CEL over `event`, `profile`; e.g. event.properties.revenue > 50",
    )

    _check = field_validator("condition")(condition_checker(JOURNEY_VARIABLES))


class SegmentTrigger(Strict):
    """Start when a customer enters (or leaves) a segment."""

    segment: Identifier = Field(description="Segment id under segments/.")
    change: Literal["entered", "exited"] = "entered"


class DateTrigger(Strict):
    """Start on a date held in a profile trait (birthday, renewal date), N days before/after."""

    date_attribute: str = Field(description="Trait holding a date, e.g. 'birthday'.")
    offset_days: int = Field(default=0, description="Days after (negative: before) the date.")
    at: TimeOfDay = Field(default="09:00", description="Time of day, customer's time zone.")
    yearly: bool = Field(default=False, description="Every year on that day (birthdays).")


class ScheduleTrigger(Strict):
    """Start every member of a segment on a recurring schedule (cron)."""

    schedule: str = Field(description="Cron expression, e.g. '0 9 * * 1' (Mondays 09:00).")
    segment: Identifier = Field(description="Audience entered on each run.")
    timezone: str = Field(default="UTC", description="Time zone the cron expression reads in.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value


def _trigger_kind(value: Any) -> str | None:
    """Which trigger a mapping is, from its keys, so errors speak about that one alone."""
    if not isinstance(value, dict):
        return type(value).__name__ if isinstance(value, BaseModel) else None
    if "schedule" in value:
        return "ScheduleTrigger"
    if "date_attribute" in value:
        return "DateTrigger"
    if "segment" in value:
        return "SegmentTrigger"
    return "EventTrigger"


Trigger = Annotated[
    Annotated[EventTrigger, Tag("EventTrigger")]
    | Annotated[SegmentTrigger, Tag("SegmentTrigger")]
    | Annotated[DateTrigger, Tag("DateTrigger")]
    | Annotated[ScheduleTrigger, Tag("ScheduleTrigger")],
    Discriminator(_trigger_kind),
]


class EntryRules(Strict):
    """Who may enter, how often, and who is held out to measure the journey's effect."""

    audience: Identifier | None = Field(
        default=None, description="Only members of this segment enter."
    )
    re_entry: Literal["once", "always", "after"] = Field(
        default="always", description="once per customer, always, or after `re_entry_after`."
    )
    re_entry_after: Duration | None = Field(
        default=None, description="With re_entry: after, the least time between two entries."
    )
    max_concurrent: int | None = Field(
        default=1, ge=1, description="Most instances running at once per customer (null: any)."
    )
    holdout_percent: float = Field(
        default=0, ge=0, le=100, description="Share of entrants kept out and only measured."
    )

    @model_validator(mode="after")
    def _after_needs_duration(self) -> EntryRules:
        if (self.re_entry == "after") != (self.re_entry_after is not None):
            raise ValueError("re_entry: after goes with re_entry_after (and only with it)")
        return self


class ExitCriterion(Strict):
    """Ends an instance at whatever step it is: an event (matching the trigger's keys) or a
    segment change. Exactly one of `event` and `segment_exited` / `segment_entered`."""

    event: str | None = None
    match: list[str] = Field(
        default_factory=list, description="Properties that must equal the triggering event's."
    )
    condition: str | None = Field(default=None, description="CEL over event, profile, journey.")
    segment_exited: Identifier | None = None
    segment_entered: Identifier | None = None

    _check = field_validator("condition")(condition_checker(JOURNEY_VARIABLES))

    @model_validator(mode="after")
    def _one_kind(self) -> ExitCriterion:
        kinds = [k for k in (self.event, self.segment_exited, self.segment_entered) if k]
        if len(kinds) != 1:
            raise ValueError(
                "an exit criterion needs exactly one of event, segment_exited, segment_entered"
            )
        return self


class Goal(Strict):
    """The conversion a journey is for; counted for treatment and holdout alike."""

    event: str
    condition: str | None = Field(default=None, description="CEL over event, profile, journey.")
    within: Duration = Field(default="7d", description="Conversion window from entry.")
    exit: bool = Field(default=False, description="End the instance when the goal is met.")

    _check = field_validator("condition")(condition_checker(JOURNEY_VARIABLES))


class Journey(Strict):
    """One journey file: `journeys/<id>.yaml`."""

    id: Identifier
    name: str
    version: int = Field(ge=1)
    description: str | None = None
    enabled: bool = True
    priority: int = Field(default=0, description="Higher wins when channel caps collide.")
    trigger: Trigger
    entry: EntryRules = Field(default_factory=EntryRules)
    steps: list[Step] = Field(min_length=1)
    exit_on: list[ExitCriterion] = Field(default_factory=list)
    goal: Goal | None = None

    @model_validator(mode="after")
    def _unique_step_ids(self) -> Journey:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self
