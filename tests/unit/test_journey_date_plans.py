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
    failed: dict[tuple[str, str], datetime] = {}
    first = _moved_dates(registry, engine, people, NOW, {}, written=failed)
    assert {t.profile_id for t in first} == {"p1", "p2"}
    assert set(failed) == {("bday", "p1"), ("bday", "p2")}
    # the transaction that wrote them failed: its plans are dropped, never committed
    written: dict[tuple[str, str], datetime] = {}
    again = _moved_dates(registry, engine, people, NOW, {}, written=written)
    assert [(t.profile_id, t.due_at) for t in again] == [(t.profile_id, t.due_at) for t in first]
    registry.dates_committed(written)
    assert (
        _moved_dates(registry, engine, people, NOW, {}, written={}) == []
    )  # written once committed


def test_two_lanes_keep_their_plans_apart() -> None:
    """One lane's rollback does not forget what the other wrote, nor commit what it did not."""
    registry, engine = _registry(), Engine()
    lane_a: dict[tuple[str, str], datetime] = {}
    lane_b: dict[tuple[str, str], datetime] = {}
    _moved_dates(registry, engine, [_born("p1")], NOW, {}, written=lane_a)
    _moved_dates(registry, engine, [_born("p2")], NOW, {}, written=lane_b)
    registry.dates_committed(lane_a)  # lane b rolls back
    assert [
        t.profile_id
        for t in _moved_dates(registry, engine, [_born("p1"), _born("p2")], NOW, {}, written={})
    ] == ["p2"]
