"""Journey files load into typed models; a bad one is refused with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.journey.engine import CompiledJourney, entries_for, instance_id
from services.journey.loader import load_journey, load_journeys
from shared.contracts import ProfileSnapshot
from shared.yamldoc import DefinitionError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
id: thanks
name: Thanks
version: 1
trigger:
  event: Order Completed
  condition: event.properties.revenue > 10
steps:
  - id: mail
    type: send
    channel: email
    template: order-thank-you
"""


def test_shipped_journey_loads() -> None:
    journeys, errors = load_journeys(ROOT / "journeys")
    assert not errors
    assert any(j.id == "post-purchase-thank-you" for j in journeys)


def test_unknown_channel_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("channel: email", "channel: pigeon"))
    with pytest.raises(DefinitionError) as info:
        load_journey(path)
    assert info.value.line == 10
    assert "channel" in info.value.message
    assert str(info.value).startswith(f"{path}:10:")


def test_bad_cel_and_bad_yaml_are_refused_with_lines(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("revenue > 10", "revenue >"))
    (tmp_path / "b.yaml").write_text("id: x\nname: [unclosed\n")
    (tmp_path / "c.yaml").write_text(GOOD)
    journeys, errors = load_journeys(tmp_path)
    assert [j.id for j in journeys] == ["thanks"]
    assert {(Path(e.path).name, e.line) for e in errors} == {("a.yaml", 6), ("b.yaml", 3)}
    assert "CEL" in errors[0].message


def test_trigger_condition_selects_events(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text(GOOD)
    compiled = [CompiledJourney.of(load_journey(path))]
    profile = ProfileSnapshot(profile_id="p", version=1, updated_at="2026-01-01T00:00:00Z")
    big = {"type": "track", "event": "Order Completed", "messageId": "m1",
           "properties": {"revenue": 50}}  # fmt: skip
    small = {**big, "messageId": "m2", "properties": {"revenue": 5}}
    assert len(entries_for(compiled, big, profile)) == 1
    assert entries_for(compiled, small, profile) == []
    entry = entries_for(compiled, big, profile)[0]
    assert entry.instance_id == instance_id(compiled[0].journey, "p", "m1")  # stable on redelivery
