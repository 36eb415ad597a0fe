"""Segment definitions (`segments/*.yaml`): a CEL condition over the profile snapshot."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.cel import Condition, check_expression
from shared.yamldoc import DefinitionError, load_yaml, validate_doc

log = logging.getLogger(__name__)


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str
    description: str | None = None
    condition: str = Field(
        description="CEL over `profile`, e.g. profile.behaviour.orders_count >= 3"
    )
    enabled: bool = True

    _check = field_validator("condition")(check_expression)


@dataclass(frozen=True)
class CompiledSegment:
    segment: Segment
    condition: Condition

    def matches(self, profile: dict[str, Any]) -> bool:
        return self.condition.holds({"profile": profile})


def load_segments(directory: Path) -> tuple[list[CompiledSegment], list[DefinitionError]]:
    segments: list[CompiledSegment] = []
    errors: list[DefinitionError] = []
    for path in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
        try:
            segment = validate_doc(load_yaml(path), Segment)
        except DefinitionError as exc:
            log.error("segment refused: %s", exc)
            errors.append(exc)
            continue
        if segment.enabled:
            segments.append(CompiledSegment(segment, Condition(segment.condition)))
    return segments, errors
