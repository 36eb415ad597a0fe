"""Entry rules with no I/O: may this customer enter this journey now, and under which key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.journey.dsl import Journey
from services.journey.durations import parse_duration


@dataclass
class CustomerFacts:
    """What the entry rules need to know about one customer, loaded once per batch."""

    segments: set[str] = field(default_factory=set)
    active: dict[str, int] = field(default_factory=dict)  # journey id -> running instances
    last_entry: dict[str, datetime] = field(default_factory=dict)  # journey id -> last entry


def refusal(journey: Journey, facts: CustomerFacts, now: datetime) -> str | None:
    """Why the customer may not enter (None: they may)."""
    rules = journey.entry
    if rules.audience and rules.audience not in facts.segments:
        return f"not in audience {rules.audience}"
    last = facts.last_entry.get(journey.id)
    if last is not None:
        if rules.re_entry == "once":
            return "already entered once"
        after = rules.re_entry_after
        if rules.re_entry == "after" and after and now < last + parse_duration(after):
            return f"entered less than {rules.re_entry_after} ago"
    if rules.max_concurrent is not None and facts.active.get(journey.id, 0) >= rules.max_concurrent:
        return "already running"
    return None


def entry_key(journey: Journey, key: str) -> str:
    """`once` journeys have one key per customer, so even a race cannot enter them twice."""
    return "once" if journey.entry.re_entry == "once" else key


def admit(facts: CustomerFacts, journey: Journey, now: datetime) -> None:
    facts.active[journey.id] = facts.active.get(journey.id, 0) + 1
    facts.last_entry[journey.id] = now
