"""Publishing journeys: files and API bodies become stored versions. A version is immutable
once stored; a file that fails validation or changes a stored version is refused and the
running version keeps going."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey import catalog, repository
from services.journey.dsl import Journey
from services.journey.loader import load_journeys
from services.journey.registry import Registry
from services.journey.service import schedule_timers


class Refused(ValueError):
    """A journey that cannot be published, with a message for the marketer."""


async def publish(conn: AsyncConnection, journey: Journey, source: str) -> str:
    """Store a journey version; `new` or `same`. Raises Refused for a changed version."""
    outcome = await catalog.publish(conn, journey, source)
    if outcome == "conflict":
        raise Refused(
            f"{source}: journey {journey.id!r} version {journey.version} is already published "
            "with other content; running instances stay on it. Raise `version` to publish a change."
        )
    return outcome


async def publish_files(conn: AsyncConnection, directories: Sequence[Path]) -> list[str]:
    """Publish every valid file of the directories; return what was refused, and why."""
    refused: list[str] = []
    seen: set[str] = set()
    for directory in directories:
        journeys, errors = load_journeys(directory)
        refused += [str(e) for e in errors]
        for journey in journeys:
            if journey.id in seen:
                refused.append(f"{directory}: journey id {journey.id!r} is defined twice")
                continue
            seen.add(journey.id)
            try:
                await publish(conn, journey, str(directory / f"{journey.id}.yaml"))
            except Refused as exc:
                refused.append(str(exc))
    return refused


async def load_registry(conn: AsyncConnection, refused: Sequence[str] = ()) -> Registry:
    stored, status = await catalog.stored(conn)
    registry = Registry(refused=list(refused))
    for journey in stored:
        registry.add(journey)
    registry.status.update(status)
    registry.changed()
    return registry


async def plan_schedules(conn: AsyncConnection, registry: Registry, now: datetime) -> None:
    """Make sure every scheduled journey has its next run planned."""
    await repository.schedule_missing(conn, schedule_timers(registry, now))
