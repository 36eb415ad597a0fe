"""Journey files load into typed models; a bad one is refused with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.journey.engine import instance_id
from services.journey.loader import load_journey, load_journeys
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


def test_graph_rules_point_at_their_lines(tmp_path: Path) -> None:
    body = (
        GOOD
        + """  - id: back
    type: branch
    cases:
      - {condition: "true", next: mail}
  - {id: stop, type: exit}
  - {id: orphan, type: exit}
"""
    )
    path = tmp_path / "loop.yaml"
    path.write_text(body)
    with pytest.raises(DefinitionError) as info:
        load_journey(path)
    assert info.value.line == 15
    assert "loops need a goto step with max_loops" in info.value.message
    assert "(and 1 more)" in info.value.message


def test_instance_ids_are_stable() -> None:
    assert instance_id("j", 1, "p", "m1") == instance_id("j", 1, "p", "m1")
    assert instance_id("j", 2, "p", "m1") != instance_id("j", 1, "p", "m1")
