"""The running set of segments, indexed by what can change them.

A profile event re-evaluates only the segments whose inputs it can change: segments keeping
facts about that event name, segments reading a profile field whose value differs between the
stored snapshot and the new one, and, transitively, segments that depend on those through
`in_segment`. Comparing the referenced fields themselves (rather than guessing which event moves
which aggregate) stays right whatever the profile service learns to compute. Evaluation follows
the reference order, so a segment always sees its dependencies' fresh answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.segmenter.definitions import CompiledSegment
from services.segmenter.evaluation import lookup

ANY = "*"
# `profile.<section>.<field>`; a method call (`profile.traits.size()`) reads the whole section.
_PATH = re.compile(r"\bprofile\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*)(?!\w|\s*\())?")
_BARE = re.compile(r"\bprofile\b(?!\s*\.)")
_CALL = re.compile(r"\bprofile\.[A-Za-z_]\w*\s*\(")  # a method of the profile itself


def cel_paths(source: str) -> list[str]:
    """Profile fields a CEL expression reads; `*` when it reads the profile another way."""
    paths = [
        f"{m.group(1)}.{m.group(2)}" if m.group(2) else m.group(1) for m in _PATH.finditer(source)
    ]
    return [*paths, ANY] if _BARE.search(source) or _CALL.search(source) else paths


WatchedPaths = dict[str, tuple[tuple[str, str], ...]]
"""Watched profile fields by section: `{"behaviour": (("behaviour.orders_count",
"orders_count"), ...), "traits": (("traits", ""),)}` (an empty field: the whole section)."""


def watched_by_section(paths: Iterable[str]) -> WatchedPaths:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(set(paths)):
        section, _, name = path.partition(".")
        grouped.setdefault(section, []).append((path, name))
    return {section: tuple(fields) for section, fields in grouped.items()}


def changed_paths(
    watched: WatchedPaths, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> set[str]:
    """The watched profile fields whose values differ (all of them for a new profile).

    A section equal in both (most events leave the traits and consent alone) is settled by
    one comparison instead of one lookup per field in it."""
    if before is None:
        return {path for fields in watched.values() for path, _ in fields}
    changed: set[str] = set()
    for section, fields in watched.items():
        old, new = before.get(section), after.get(section)
        if old == new:
            continue
        for path, name in fields:
            if not name or _field(old, name) != _field(new, name):
                changed.add(path)
    return changed


def _field(section: Any, name: str) -> Any:
    """`name` (maybe dotted: `address.city`) inside a section, or None."""
    if not isinstance(section, dict):
        return None
    return section.get(name) if "." not in name else lookup(section, name)


@dataclass
class Catalog:
    """Enabled segments in dependency order, with their indexes."""

    segments: list[CompiledSegment]

    def __post_init__(self) -> None:
        by_id = {s.id: s for s in self.segments}
        order: list[CompiledSegment] = []
        seen: set[str] = set()

        def place(seg: CompiledSegment) -> None:
            if seg.id in seen:
                return
            seen.add(seg.id)
            for ref in seg.references():
                if ref in by_id:
                    place(by_id[ref])
            order.append(seg)

        for seg in self.segments:
            place(seg)
        self.ordered = order
        self.by_id = by_id
        self.position = {s.id: i for i, s in enumerate(order)}
        self.dependents: dict[str, set[str]] = {s.id: set() for s in order}
        for seg in order:
            for ref in seg.references():
                if ref in self.dependents:
                    self.dependents[ref].add(seg.id)
        self.by_event: dict[str, set[str]] = {}
        self.by_path: dict[str, set[str]] = {}
        self.always: set[str] = set()
        for seg in order:
            for event, _ in seg.fact_keys():
                self.by_event.setdefault(event, set()).add(seg.id)
            for path in seg.profile_paths():
                if path == ANY:
                    self.always.add(seg.id)
                else:
                    self.by_path.setdefault(path, set()).add(seg.id)
        self.watched_paths = watched_by_section(self.by_path)
        self._cel_fields: dict[tuple[str, ...], list[str] | None] = {}
        self.timed = any(s.time_dependent for s in order)
        self.fact_keys = {k for s in order for k in s.fact_keys()}
        self.tracked_events = {event for event, _ in self.fact_keys}
        horizons: dict[str, float] = {}
        for seg in order:
            for event, days in seg.horizon_days().items():
                horizons[event] = max(horizons.get(event, 0.0), days)
        self.horizon_days = horizons
        self.longest_days = max(horizons.values(), default=0.0)

    def cel_fields(self, segments: Sequence[CompiledSegment]) -> list[str] | None:
        """The profile fields the CEL of these segments reads (None: the whole profile).

        A profile is converted for CEL once per decision, at a cost that grows with every
        field and map in it (tens of µs, against ~1 µs an evaluation), so only what the
        segments being decided read goes in. Remembered per plan: plans repeat."""
        key = tuple(s.id for s in segments)
        if key in self._cel_fields:
            return self._cel_fields[key]
        paths = {p for seg in segments for p in seg.cel_paths()}
        if len(self._cel_fields) >= 4_096:
            self._cel_fields.clear()
        found = self._cel_fields[key] = None if ANY in paths else sorted(paths)
        return found

    def ids(self) -> list[str]:
        return [s.id for s in self.ordered]

    def with_dependents(self, seg_ids: Iterable[str]) -> list[CompiledSegment]:
        """These segments and everything depending on them, in evaluation order."""
        wanted: set[str] = set()
        stack = [s for s in seg_ids if s in self.by_id]
        while stack:
            seg_id = stack.pop()
            if seg_id not in wanted:
                wanted.add(seg_id)
                stack.extend(self.dependents.get(seg_id, ()))
        return sorted((self.by_id[s] for s in wanted), key=lambda s: self.position[s.id])

    def affected_by(
        self, events: Iterable[str], paths: Iterable[str] = ()
    ) -> list[CompiledSegment]:
        """Segments that events of these names and changes of these fields can change."""
        ids = set(self.always)
        for event in events:
            ids |= self.by_event.get(event, set())
        for path in paths:
            ids |= self.by_path.get(path, set())
        return self.with_dependents(ids)
