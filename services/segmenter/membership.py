"""Which segments a profile enters and leaves, given where it was: a pure set difference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.segmenter.definitions import CompiledSegment


def changes(
    segments: Sequence[CompiledSegment], profile: dict[str, Any], current: set[str]
) -> tuple[set[str], set[str]]:
    """(entered, exited) segment ids for this profile snapshot."""
    now = {s.segment.id for s in segments if s.matches(profile)}
    known = {s.segment.id for s in segments}
    return now - current, (current & known) - now
