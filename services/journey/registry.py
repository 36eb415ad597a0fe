"""The journeys a replica runs: every stored version (running instances keep theirs), which
version new customers enter, and whether each journey is active, paused or archived."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.journey.compiled import CompiledJourney
from services.journey.dsl import DateTrigger, EventTrigger, Journey, ScheduleTrigger, SegmentTrigger


@dataclass
class Registry:
    versions: dict[tuple[str, int], CompiledJourney] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # active, paused, archived
    refused: list[str] = field(default_factory=list)
    _by_event: dict[str, list[CompiledJourney]] | None = field(default=None, repr=False)
    _listened: set[str] | None = field(default=None, repr=False)
    planned_dates: dict[tuple[str, str], datetime] = field(default_factory=dict, repr=False)
    """Date-trigger timers this replica wrote and committed, so returning customers cost no
    write."""

    def dates_committed(self, written: Mapping[tuple[str, str], datetime]) -> None:
        """Date timers a transaction wrote, remembered once it committed: a batch rolled back
        and retried must write them again. Each transaction keeps its own until then (the
        consumer's lanes commit one by one)."""
        if len(self.planned_dates) > 500_000:
            self.planned_dates.clear()
        self.planned_dates.update(written)

    def changed(self) -> None:
        """Forget the indexes after versions or statuses change."""
        self._by_event = None
        self._listened = None

    def set_status(self, journey_id: str, status: str) -> None:
        self.status[journey_id] = status
        self.changed()

    def add(self, journey: Journey, status: str = "active") -> CompiledJourney:
        compiled = self.versions.get((journey.id, journey.version)) or CompiledJourney(journey)
        self.versions[compiled.key] = compiled
        if journey.version >= self.latest.get(journey.id, 0):
            self.latest[journey.id] = journey.version
        self.status.setdefault(journey.id, status)
        self.changed()
        return compiled

    def get(self, journey_id: str, version: int) -> CompiledJourney | None:
        return self.versions.get((journey_id, version))

    def current(self, journey_id: str) -> CompiledJourney | None:
        version = self.latest.get(journey_id)
        return None if version is None else self.versions.get((journey_id, version))

    def running(self, journey_id: str) -> bool:
        """Instances move (timers fire, events advance them) only while active."""
        return self.status.get(journey_id, "active") == "active"

    def enterable(self) -> list[CompiledJourney]:
        """Latest versions new customers may enter: active and enabled."""
        out = []
        for journey_id, version in self.latest.items():
            cj = self.versions[(journey_id, version)]
            if self.running(journey_id) and cj.journey.enabled:
                out.append(cj)
        return out

    def event_triggered(self, name: str) -> list[CompiledJourney]:
        if self._by_event is None:
            index: dict[str, list[CompiledJourney]] = {}
            for c in self.enterable():
                if isinstance(c.journey.trigger, EventTrigger):
                    index.setdefault(c.journey.trigger.event, []).append(c)
            self._by_event = index
        return self._by_event.get(name, [])

    def concerns(self, name: str) -> bool:
        """Whether any stored version starts on, or is moved by, events of this name; events
        no journey knows need neither processing nor deduplication."""
        if self._listened is None:
            found: set[str] = set()
            for c in self.versions.values():
                found |= c.events
                if isinstance(c.journey.trigger, EventTrigger):
                    found.add(c.journey.trigger.event)
            self._listened = found
        return name in self._listened

    def segment_triggered(self, segment: str, change: str) -> list[CompiledJourney]:
        out = []
        for c in self.enterable():
            t = c.journey.trigger
            if isinstance(t, SegmentTrigger) and t.segment == segment and t.change == change:
                out.append(c)
        return out

    def date_triggered(self) -> list[CompiledJourney]:
        return [c for c in self.enterable() if isinstance(c.journey.trigger, DateTrigger)]

    def scheduled(self) -> list[CompiledJourney]:
        return [c for c in self.enterable() if isinstance(c.journey.trigger, ScheduleTrigger)]

    def all_current(self) -> list[CompiledJourney]:
        return [self.versions[(j, v)] for j, v in self.latest.items()]
