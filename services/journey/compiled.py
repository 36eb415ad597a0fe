"""A journey ready to run: its CEL compiled once, its steps indexed, its durations parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cel

from services.journey.dsl import Journey, Step
from services.journey.durations import parse_duration
from shared.cel import Condition


@dataclass
class CompiledJourney:
    journey: Journey
    steps: dict[str, Step] = field(init=False)
    following: dict[str, str | None] = field(init=False)
    events: set[str] = field(init=False)
    memo: dict[tuple[str | None, str | None], tuple[datetime, datetime]] = field(
        init=False, default_factory=dict, repr=False
    )
    """Date triggers: (date trait, time zone trait) -> (since, the occurrence found then)."""
    _conditions: dict[str, tuple[Condition, frozenset[str], bool]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        steps = self.journey.steps
        self.steps = {s.id: s for s in steps}
        self.following = {
            s.id: (steps[i + 1].id if i + 1 < len(steps) else None) for i, s in enumerate(steps)
        }
        for source in self._sources():
            names = frozenset(cel.compile(source).variables())
            self._conditions[source] = Condition(source), names, _event_properties_only(source)
        self.events = self._listened()

    @classmethod
    def of(cls, journey: Journey) -> CompiledJourney:
        return cls(journey)

    @property
    def key(self) -> tuple[str, int]:
        return self.journey.id, self.journey.version

    @property
    def first_step(self) -> str:
        return self.journey.steps[0].id

    def holds(self, source: str | None, variables: dict[str, Any]) -> bool:
        """A condition of this journey (None: always true). Only the variables the condition
        names are handed to CEL: converting each to CEL values is most of an evaluation's cost
        (a profile ~40 µs, the whole context ~100 µs, where the event alone costs ~35)."""
        if source is None:
            return True
        condition, names, properties_only = self._conditions[source]
        given = {k: v for k, v in variables.items() if k in names}
        if properties_only and "event" in given:
            # The condition reads nothing of the event but its properties: the rest of the
            # message (ids, timestamps, context) need not be converted to CEL values.
            event = given["event"]
            given["event"] = {"properties": event["properties"]} if "properties" in event else {}
        return condition.holds(given)

    def uses(self, source: str | None, name: str) -> bool:
        """Whether a condition reads this top-level variable (None: reads nothing)."""
        return source is not None and name in self._conditions[source][1]

    def goal_window(self) -> timedelta | None:
        return parse_duration(self.journey.goal.within) if self.journey.goal else None

    def listens_to(self, event_name: str) -> bool:
        """Whether an event of this name can move a running instance (goal, exit, wait)."""
        return event_name in self.events

    def _listened(self) -> set[str]:
        found = {c.event for c in self.journey.exit_on if c.event}
        if self.journey.goal:
            found.add(self.journey.goal.event)
        found |= {s.event for s in self.journey.steps if s.type == "wait_for_event"}
        return found

    def _sources(self) -> list[str]:
        j = self.journey
        out = [getattr(j.trigger, "condition", None)]
        out += [c.condition for c in j.exit_on]
        out.append(j.goal.condition if j.goal else None)
        for step in j.steps:
            out.append(getattr(step, "condition", None))
            out += [c.condition for c in getattr(step, "cases", [])]
        return [s for s in out if s]


_EVENT = re.compile(r"\bevent\b")
_EVENT_PROPERTIES = re.compile(r"\bevent\.properties\b")


def _event_properties_only(source: str) -> bool:
    """Whether every `event` in the source is `event.properties` (conservative: an `event`
    anywhere else, even in a string or another field's name, says no)."""
    return len(_EVENT.findall(source)) == len(_EVENT_PROPERTIES.findall(source))
