"""Loading `journeys/*.yaml`: every file validated, every error with file and line. A bad file is
reported and skipped; the journeys already running are not disturbed by it."""

from __future__ import annotations

import logging
from pathlib import Path

from services.journey.dsl import Journey
from services.journey.graph import problems
from shared.yamldoc import DefinitionError, YamlDoc, load_yaml, validate_doc

log = logging.getLogger(__name__)


def check_doc(doc: YamlDoc) -> Journey:
    """Schema, CEL and step-graph rules; the first problem raised with its line."""
    journey = validate_doc(doc, Journey)
    found = problems(journey)
    if found:
        loc, message = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise DefinitionError(doc.path, doc.line_of(loc), message + more)
    return journey


def load_journey(path: Path) -> Journey:
    return check_doc(load_yaml(path))


def load_journeys(directory: Path) -> tuple[list[Journey], list[DefinitionError]]:
    """All valid journeys of a directory, and the errors of the others."""
    journeys: list[Journey] = []
    errors: list[DefinitionError] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.y*ml")):
        try:
            journey = load_journey(path)
        except DefinitionError as exc:
            errors.append(exc)
            continue
        if journey.id in seen:
            errors.append(
                DefinitionError(path, None, f"id {journey.id!r} already used by {seen[journey.id]}")
            )
            continue
        seen[journey.id] = path
        journeys.append(journey)
    for error in errors:
        log.error("journey refused: %s", error)
    return journeys, errors
