"""The journeys a replica runs: every stored version (running instances keep theirs), which
version new customers enter, and whether each journey is active, paused or archived."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.journey.compiled import CompiledJourney
from services.journey.dsl import DateTrigger, EventTrigger, Journey, ScheduleTrigger, SegmentTrigger


@dataclass
class Registry:
    versions: dict[tuple[str, int], CompiledJourney] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # active, paused, archived
    refused: list[str] = field(default_factory=list)

    def add(self, journey: Journey, status: str = "active") -> CompiledJourney:
        compiled = self.versions.get((journey.id, journey.version)) or CompiledJourney(journey)
        self.versions[compiled.key] = compiled
        if journey.version >= self.latest.get(journey.id, 0):
            self.latest[journey.id] = journey.version
        self.status.setdefault(journey.id, status)
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
        return [
            c
            for c in self.enterable()
            if isinstance(c.journey.trigger, EventTrigger) and c.journey.trigger.event == name
        ]

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
