"""Segment definitions (`segments/*.yaml`): a CEL condition over the profile snapshot and/or a
`where:` tree of behavioural rules, loaded and checked as a set (references, cycles) so that a
refused file is reported with its file and line and never reaches what runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.segmenter.evaluation import (
    OCCURRENCE,
    CelCondition,
    Context,
    Node,
    compile_rule,
)
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
from shared.cel_check import SEGMENT_VARIABLES, condition_checker
from shared.yamldoc import DefinitionError, YamlDoc, load_yaml, validate_doc

log = logging.getLogger(__name__)


class Segment(BaseModel):
    """A segment: who is in it is decided by `condition` AND `where` (either may be left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str
    description: str | None = None
    condition: str | None = Field(
        default=None, description="CEL over `profile`, e.g. profile.behaviour.orders_count >= 3"
    )
    where: Rule | None = Field(
        default=None,
        description="Behavioural rules over event windows, combined with all / any / not.",
    )
    enabled: bool = True

    _check = field_validator("condition")(condition_checker(SEGMENT_VARIABLES))

    @model_validator(mode="after")
    def _something_to_decide(self) -> Segment:
        if self.condition is None and self.where is None:
            raise ValueError("a segment needs a `condition`, a `where`, or both")
        return self


def walk(rule: Rule) -> list[Rule]:
    """The rule and every rule under it."""
    match rule:
        case AllRule():
            return [rule, *(r for child in rule.all for r in walk(child))]
        case AnyRule():
            return [rule, *(r for child in rule.any for r in walk(child))]
        case NotRule():
            return [rule, *walk(rule.not_)]
    return [rule]


_TIMED = (AggregateRule, NotDoneRule, SequenceRule, DaysSinceRule, AnniversaryRule)


@dataclass(frozen=True)
class CompiledSegment:
    segment: Segment
    condition: CelCondition | None
    where: Node | None
    source: str = ""
    rules: tuple[Rule, ...] = field(default=())
    time_dependent: bool = False
    """Some rule's answer can change with the clock alone (the segment keeps timers)."""
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, segment: Segment, source: str = "") -> CompiledSegment:
        condition = CelCondition(segment.condition) if segment.condition else None
        where = compile_rule(segment.where) if segment.where is not None else None
        rules = tuple(walk(segment.where)) if segment.where is not None else ()
        timed = any(isinstance(r, _TIMED) for r in rules)
        return cls(segment, condition, where, source, rules, timed, {})

    @property
    def id(self) -> str:
        return self.segment.id

    def decide(self, ctx: Context) -> tuple[bool, Any]:
        """(member, next instant the answer may change by time alone, or None)."""
        if self.condition is not None and not self.condition.holds(ctx):
            # A false CEL part decides alone; it cannot change with time.
            return False, None
        if self.where is None:
            return True, None
        return self.where.evaluate(ctx)

    def matches(self, profile: dict[str, Any]) -> bool:
        """Profile-only check (no event facts, no other segments), as before `where` existed."""
        from datetime import UTC, datetime  # noqa: PLC0415

        return self.decide(Context(profile, {}, datetime.now(UTC)))[0]

    def references(self) -> list[str]:
        return [r.in_segment for r in self.rules if isinstance(r, InSegmentRule)]

    def fact_keys(self) -> set[tuple[str, str]]:
        """(event, property) pairs the segmenter must keep for this definition."""
        if "facts" in self._memo:
            return set(self._memo["facts"])
        keys: set[tuple[str, str]] = set()
        for r in self.rules:
            if isinstance(r, AggregateRule):
                keys.add((r.event, r.property or OCCURRENCE))
            elif isinstance(r, NotDoneRule):
                keys.add((r.not_done, OCCURRENCE))
            elif isinstance(r, SequenceRule):
                keys |= {(r.did, OCCURRENCE), (r.then_not, OCCURRENCE)}
        self._memo["facts"] = frozenset(keys)
        return keys

    def horizon_days(self) -> dict[str, float]:
        """How far back each referenced event must be remembered."""
        out: dict[str, float] = {}
        for r in self.rules:
            spans: list[tuple[str, float]] = []
            if isinstance(r, AggregateRule):
                spans = [(r.event, r.within_days)]
            elif isinstance(r, NotDoneRule):
                spans = [(r.not_done, r.for_days)]
            elif isinstance(r, SequenceRule):
                days = r.lookback_days + r.within_hours / 24
                spans = [(r.did, days), (r.then_not, days)]
            for event, days in spans:
                out[event] = max(out.get(event, 0.0), days)
        return out

    def cel_paths(self) -> list[str]:
        """Profile fields its CEL reads (`*` when CEL reads the profile wholesale)."""
        if "cel" not in self._memo:
            from services.segmenter.catalog import cel_paths  # noqa: PLC0415

            sources = [self.segment.condition] if self.segment.condition else []
            sources += [r.cel for r in self.rules if isinstance(r, CelRule)]
            self._memo["cel"] = tuple(p for source in sources for p in cel_paths(source))
        return list(self._memo["cel"])

    def profile_paths(self) -> list[str]:
        """Profile fields read by CEL and by date rules (`*` when CEL reads it wholesale)."""
        paths = self.cel_paths()
        for r in self.rules:
            if isinstance(r, DaysSinceRule):
                paths.append(r.days_since)
            elif isinstance(r, AnniversaryRule):
                paths += [r.anniversary, "traits.timezone"]
        return paths


def _line_of_reference(doc: YamlDoc | None, target: str) -> int | None:
    if doc is None:
        return None
    for loc, line in doc.lines.items():
        if loc and loc[-1] == "in_segment":
            node: Any = doc.data
            for part in loc:
                node = node[part]
            if node == target:
                return line
    return None


def check_set(
    candidates: Sequence[tuple[CompiledSegment, YamlDoc | None]],
) -> tuple[list[CompiledSegment], list[DefinitionError]]:
    """Refuse duplicates, references to unknown segments and reference cycles, with file:line.

    A definition that refers to a refused one is refused too, so nothing half-valid runs."""
    errors: list[DefinitionError] = []
    kept: dict[str, tuple[CompiledSegment, YamlDoc | None]] = {}
    for compiled, doc in candidates:
        if compiled.id in kept:
            line = doc.line_of(("id",)) if doc else None
            first = kept[compiled.id][0].source
            errors.append(
                DefinitionError(
                    compiled.source, line, f"id: `{compiled.id}` already used by {first}"
                )
            )
            continue
        kept[compiled.id] = (compiled, doc)
    changed = True
    while changed:
        changed = False
        for seg_id, (compiled, doc) in list(kept.items()):
            missing = [ref for ref in compiled.references() if ref not in kept]
            if missing:
                line = _line_of_reference(doc, missing[0])
                message = f"where: in_segment `{missing[0]}` is not a valid segment"
                errors.append(DefinitionError(compiled.source, line, message))
                del kept[seg_id]
                changed = True
    for seg_id in _in_cycles({k: v[0].references() for k, v in kept.items()}):
        compiled, doc = kept.pop(seg_id)
        ref = compiled.references()[0] if compiled.references() else seg_id
        errors.append(
            DefinitionError(
                compiled.source,
                _line_of_reference(doc, ref),
                f"where: in_segment makes a cycle through `{seg_id}`",
            )
        )
    return [c for c, _ in kept.values()], errors


def _in_cycles(graph: dict[str, list[str]]) -> list[str]:
    """Segments that lie on, or depend on, a reference cycle (in sorted order)."""
    state: dict[str, int] = {}
    bad: set[str] = set()

    def visit(node: str) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2:
            return node in bad
        state[node] = 1
        cyclic = any(visit(ref) for ref in graph.get(node, ()) if ref in graph)
        state[node] = 2
        if cyclic:
            bad.add(node)
        return cyclic

    for node in sorted(graph):
        visit(node)
    return sorted(bad)


def load_segments(directory: Path) -> tuple[list[CompiledSegment], list[DefinitionError]]:
    """Every valid definition in `directory` (disabled ones included) and the refused files."""
    candidates: list[tuple[CompiledSegment, YamlDoc | None]] = []
    errors: list[DefinitionError] = []
    for path in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
        if path.stem == "rfm":
            continue  # RFM boundaries, not a segment (services/segmenter/rfm.py)
        try:
            doc = load_yaml(path)
            candidates.append((CompiledSegment.of(validate_doc(doc, Segment), str(path)), doc))
        except DefinitionError as exc:
            errors.append(exc)
    segments, set_errors = check_set(candidates)
    errors += set_errors
    for error in errors:
        log.error("segment refused: %s", error)
    return segments, errors
