"""Date-trigger timers are remembered as planned only once their transaction commits: a batch
rolled back and retried writes its birthday timers again (none is silently dropped)."""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from services.journey.dsl import Journey
from services.journey.engine import Engine
from services.journey.registry import Registry
from services.journey.service import _moved_dates
from shared.contracts import ProfileSnapshot

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BIRTHDAY = """id: bday
name: Birthday
version: 1
trigger: {date_attribute: birthday, yearly: true, at: "09:00"}
steps: [{id: card, type: send, channel: email, template: birthday}]
"""


def _registry() -> Registry:
    registry = Registry()
    registry.add(Journey.model_validate(yaml.safe_load(BIRTHDAY)))
    return registry


def _born(pid: str) -> ProfileSnapshot:
    return ProfileSnapshot(
        profile_id=pid, version=1, user_id=pid, traits={"birthday": "1990-03-04"}, updated_at=NOW
    )


def test_a_rolled_back_batch_plans_its_date_timers_again() -> None:
    registry, engine, people = _registry(), Engine(), [_born("p1"), _born("p2")]
    first = _moved_dates(registry, engine, people, NOW, {})
    assert {t.profile_id for t in first} == {"p1", "p2"}
    registry.dates_rolled_back()  # the transaction that wrote them failed
    again = _moved_dates(registry, engine, people, NOW, {})
    assert [(t.profile_id, t.due_at) for t in again] == [(t.profile_id, t.due_at) for t in first]
    registry.dates_committed()
    assert _moved_dates(registry, engine, people, NOW, {}) == []  # written once committed
