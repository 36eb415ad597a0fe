"""Deciding one segment for one profile, and when that answer can next change by time alone.

A rule tree is compiled once into nodes; each node answers `(holds, next_change)` where
`next_change` is the earliest future instant at which its answer may flip with no new event
(an event leaving a window, a "not done for N days" maturing, a birthday starting or ending).
Combinations take the earliest of their children: re-evaluating a little too early is harmless,
missing a change is not. That instant is what the segmenter stores as the profile's timer, so the
clock never has to scan every profile.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import cel

from services.segmenter.rules import (
    AggregateRule,
    AllRule,
    AnniversaryRule,
    AnyRule,
    CelRule,
    DaysSinceRule,
    InSegmentRule,
    NotDoneRule,
    NotRule,
    Rule,
    SequenceRule,
)
from shared.customer_time import anniversary_in, customer_zone

OCCURRENCE = ""
"""The `property` of the fact that records an occurrence itself (counted, sequenced)."""

FactKey = tuple[str, str]  # (event, property)
Facts = Mapping[FactKey, Sequence[tuple[datetime, float | None]]]  # sorted by time
Result = tuple[bool, datetime | None]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip


@dataclass
class Context:
    """Everything one profile's evaluation may look at."""

    profile: dict[str, Any]
    facts: Facts
    now: datetime
    member_of: Callable[[str], bool] = field(default=lambda _: False)
    cel_fields: Sequence[str] | None = None
    """The profile fields CEL may read (`section.field` or a top-level key); None: all."""
    _cel: cel.Context | None = None

    def cel(self) -> cel.Context:
        """The profile converted for CEL once, shared by every condition decided for it. The
        conversion costs tens of microseconds for a whole snapshot, an evaluation well under
        one, so only the fields some condition reads are converted."""
        if self._cel is None:
            self._cel = cel.Context()
            self._cel.add_variable("profile", self._cel_view())
        return self._cel

    def _cel_view(self) -> dict[str, Any]:
        if self.cel_fields is None:
            return self.profile
        view: dict[str, Any] = {}
        for path in self.cel_fields:
            section, _, name = path.partition(".")
            if section not in self.profile:
                continue
            value = self.profile[section]
            if not name or not isinstance(value, dict):
                view[section] = value
            else:
                part = view.setdefault(section, {})  # present even if empty: has() stays false
                if name in value:
                    part[name] = value[name]
        return view


class CelCondition:
    """A CEL condition compiled once; an error at run time (missing field, type mismatch)
    counts as false, as in `shared.cel`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._program = cel.compile(source)

    def holds(self, ctx: Context) -> bool:
        try:
            return self._program.execute(ctx.cel()) is True
        except (ValueError, TypeError, RuntimeError, KeyError):
            return False


def earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def parse_time(value: Any) -> datetime | None:
    """An ISO date-time (or date) from a profile field or event; naive means UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lookup(profile: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a (JSON) profile, or None."""
    node: Any = profile
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class Node:
    def evaluate(self, ctx: Context) -> Result:
        raise NotImplementedError


class CelNode(Node):
    def __init__(self, source: str) -> None:
        self.condition = CelCondition(source)

    def evaluate(self, ctx: Context) -> Result:
        return self.condition.holds(ctx), None


class AggregateNode(Node):
    def __init__(self, rule: AggregateRule) -> None:
        self.rule = rule
        self.key = (rule.event, rule.property or OCCURRENCE)
        self.window = timedelta(days=rule.within_days)
        self.compare = OPS[rule.op]

    def evaluate(self, ctx: Context) -> Result:
        facts = ctx.facts.get(self.key, ())
        start = ctx.now - self.window
        inside = [(at, v) for at, v in facts if start < at <= ctx.now]
        values = [v for _, v in inside if v is not None]
        holds = self._holds(len(inside), values)
        # The answer can change when the oldest fact inside leaves the window (if leaving can
        # flip it at all), or when a fact stamped in the future enters it.
        leaving = inside[0][0] + self.window if inside else None
        if leaving is not None and not _leaving_can_flip(self.rule, holds, values):
            leaving = None
        return holds, earliest(leaving, next((at for at, _ in facts if at > ctx.now), None))

    def _holds(self, count: int, values: list[float]) -> bool:
        aggregate = self.rule.aggregate
        if aggregate == "count":
            return self.compare(count, self.rule.value)
        if aggregate == "sum":
            return self.compare(sum(values), self.rule.value)
        if not values:
            return False
        if aggregate == "avg":
            return self.compare(sum(values) / len(values), self.rule.value)
        return self.compare(min(values) if aggregate == "min" else max(values), self.rule.value)


def _leaving_can_flip(rule: AggregateRule, holds: bool, values: Sequence[float]) -> bool:
    """Whether facts leaving the window can flip this answer. Leaving only ever removes facts,
    so a count, a sum of non-negative values and a maximum can only fall (a minimum and a sum
    of non-positive values only rise): a count that is below its threshold stays below, and
    waking the customer then would decide nothing new. Most windowed rules of a shop ("2
    orders in 90 days", "spent 500 in a year") are false for most customers; without this
    each of them got a timer per event that could never change its answer."""
    if rule.op in {"==", "!="} or rule.aggregate == "avg":
        return True
    if rule.aggregate in {"min", "max"} and holds:
        return True  # an emptied window is false whatever the comparison
    falls = rule.aggregate in {"count", "max"} or (
        rule.aggregate == "sum" and all(v >= 0 for v in values)
    )
    rises = rule.aggregate == "min" or (rule.aggregate == "sum" and all(v <= 0 for v in values))
    if not (falls or rises):
        return True
    toward_true = rises if rule.op in {">=", ">"} else falls
    return holds != toward_true


def _last_before(
    facts: Sequence[tuple[datetime, float | None]], moment: datetime
) -> datetime | None:
    times = [at for at, _ in facts]
    index = bisect.bisect_right(times, moment)
    return times[index - 1] if index else None


class NotDoneNode(Node):
    def __init__(self, rule: NotDoneRule) -> None:
        self.key = (rule.not_done, OCCURRENCE)
        self.period = timedelta(days=rule.for_days)

    def evaluate(self, ctx: Context) -> Result:
        last = _last_before(ctx.facts.get(self.key, ()), ctx.now)
        if last is None or last <= ctx.now - self.period:
            return True, None
        return False, last + self.period


class SequenceNode(Node):
    def __init__(self, rule: SequenceRule) -> None:
        self.did = (rule.did, OCCURRENCE)
        self.then = (rule.then_not, OCCURRENCE)
        self.within = timedelta(hours=rule.within_hours)
        self.lookback = timedelta(days=rule.lookback_days)

    def evaluate(self, ctx: Context) -> Result:
        started = _last_before(ctx.facts.get(self.did, ()), ctx.now)
        if started is None or started <= ctx.now - self.lookback:
            return False, None
        deadline = started + self.within
        followed = any(started <= at <= deadline for at, _ in ctx.facts.get(self.then, ()))
        if followed:
            return False, None
        if ctx.now < deadline:
            return False, deadline
        return True, started + self.lookback


class DaysSinceNode(Node):
    def __init__(self, rule: DaysSinceRule) -> None:
        self.path = rule.days_since
        self.compare = OPS[rule.op]
        self.value = rule.value

    def evaluate(self, ctx: Context) -> Result:
        since = parse_time(lookup(ctx.profile, self.path))
        if since is None:
            return False, None
        days = (ctx.now - since).total_seconds() / 86_400
        # Look just after the crossing point, where strict and non-strict comparisons agree.
        crossing = since + timedelta(days=self.value, microseconds=1)
        upcoming = crossing if crossing > ctx.now else None
        return self.compare(days, self.value), upcoming


class AnniversaryNode(Node):
    def __init__(self, rule: AnniversaryRule) -> None:
        self.path = rule.anniversary

    def evaluate(self, ctx: Context) -> Result:
        raw = lookup(ctx.profile, self.path)
        if not isinstance(raw, str):
            return False, None
        try:
            born = date.fromisoformat(raw[:10])
        except ValueError:
            return False, None
        zone = customer_zone(ctx.profile)
        today = ctx.now.astimezone(zone).date()
        this_year = anniversary_in(today.year, born.month, born.day)
        if this_year == today:
            tomorrow = datetime.combine(today + timedelta(days=1), time(), zone)
            return True, tomorrow.astimezone(UTC)
        upcoming = this_year if this_year > today else anniversary_in(
            today.year + 1, born.month, born.day
        )  # fmt: skip
        return False, datetime.combine(upcoming, time(), zone).astimezone(UTC)


class InSegmentNode(Node):
    def __init__(self, rule: InSegmentRule) -> None:
        self.segment_id = rule.in_segment

    def evaluate(self, ctx: Context) -> Result:
        return ctx.member_of(self.segment_id), None


class AllNode(Node):
    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def evaluate(self, ctx: Context) -> Result:
        return _combined(self.children, ctx, all, deciding=False)


class AnyNode(AllNode):
    def evaluate(self, ctx: Context) -> Result:
        return _combined(self.children, ctx, any, deciding=True)


def _combined(
    children: Sequence[Node], ctx: Context, combine: Callable[[list[bool]], bool], deciding: bool
) -> Result:
    """`all` (a false child decides) or `any` (a true child decides). A deciding child whose
    answer time cannot change decides for good, so the combination has no next change either
    (only a new event, or a change of a referenced segment, which re-decides it, can)."""
    results = [c.evaluate(ctx) for c in children]
    holds = combine([r[0] for r in results])
    if any(h == deciding and upcoming is None for h, upcoming in results):
        return holds, None
    return holds, earliest(*(r[1] for r in results))


class NotNode(Node):
    def __init__(self, child: Node) -> None:
        self.child = child

    def evaluate(self, ctx: Context) -> Result:
        holds, upcoming = self.child.evaluate(ctx)
        return not holds, upcoming


_LEAVES: dict[type[Any], Callable[[Any], Node]] = {
    CelRule: lambda r: CelNode(r.cel),
    AggregateRule: AggregateNode,
    NotDoneRule: NotDoneNode,
    SequenceRule: SequenceNode,
    DaysSinceRule: DaysSinceNode,
    AnniversaryRule: AnniversaryNode,
    InSegmentRule: InSegmentNode,
}


def compile_rule(rule: Rule) -> Node:
    """The node tree of a rule, CEL compiled once."""
    if isinstance(rule, AllRule):
        return AllNode([compile_rule(r) for r in rule.all])
    if isinstance(rule, AnyRule):
        return AnyNode([compile_rule(r) for r in rule.any])
    if isinstance(rule, NotRule):
        return NotNode(compile_rule(rule.not_))
    return _LEAVES[type(rule)](rule)
