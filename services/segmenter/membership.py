"""Which segments one profile enters and leaves, and when to look again: pure, no I/O.

Segments are decided in reference order, so an `in_segment` rule sees the answer just computed
for the segment it names (or the stored membership when that segment is not being decided).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.segmenter.definitions import CompiledSegment
from services.segmenter.evaluation import Context, Facts


@dataclass
class Decision:
    profile_id: str
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    timers: list[tuple[str, datetime]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    members: set[str] = field(default_factory=set)


def decide(
    profile_id: str,
    segments: Sequence[CompiledSegment],
    profile: dict[str, Any],
    facts: Facts,
    *,
    now: datetime,
    current: set[str],
    cel_fields: Sequence[str] | None = None,
) -> Decision:
    """Decide `segments` (in dependency order) for one profile currently in `current`."""
    results: dict[str, bool] = {}
    ctx = Context(
        profile, facts, now, member_of=lambda s: results.get(s, s in current),
        cel_fields=cel_fields,
    )  # fmt: skip
    decision = Decision(profile_id)
    for segment in segments:
        holds, upcoming = segment.decide(ctx)
        results[segment.id] = holds
        if segment.time_dependent:
            if upcoming is not None:
                decision.timers.append((segment.id, upcoming))
            else:
                decision.cleared.append(segment.id)
    decision.entered = [s for s, holds in results.items() if holds and s not in current]
    decision.exited = [s for s, holds in results.items() if not holds and s in current]
    decision.members = {s for s, holds in results.items() if holds}
    return decision
