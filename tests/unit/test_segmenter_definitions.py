"""Segment definitions are checked as a set: a refused file is named with its line, and the
valid ones load untouched beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.segmenter.catalog import Catalog
from services.segmenter.definitions import load_segments

ROOT = Path(__file__).resolve().parents[2]
HEAD = "id: {id}\nname: {id}\n"


def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.yaml").write_text(HEAD.format(id=name) + body)


def test_shipped_segments_load_and_index() -> None:
    segments, errors = load_segments(ROOT / "segments")
    assert errors == []
    ids = {s.id for s in segments}
    assert {"customers", "big-spenders", "loyalty-premium", "lapsed-customers"} <= ids
    catalog = Catalog(segments)
    assert catalog.ids().index("customers") < catalog.ids().index("lapsed-customers")
    assert "Order Completed" in catalog.tracked_events
    assert catalog.longest_days == 365


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            "where:\n  all:\n    - aggregate: sum\n      event: X\n      within_days: 3\n"
            "      value: 1\n",
            "bad.yaml:5",
        ),
        (
            "where:\n  any:\n    - not_done: X\n      for_days: -1\n",
            "bad.yaml:6: where.any.0.for_days",
        ),
        ("where:\n  all:\n    - frobnicate: 1\n", "bad.yaml:5: where.all.0"),
        ("condition: profile.traits.(\n", "bad.yaml:3: condition: Value error, invalid CEL"),
        ("where:\n  all:\n    - in_segment: nowhere\n", "bad.yaml:5: where: in_segment `nowhere`"),
    ],
)
def test_invalid_definition_is_refused_with_file_and_line(
    tmp_path: Path, body: str, where: str
) -> None:
    _write(tmp_path, "good", "condition: profile.behaviour.orders_count >= 1\n")
    _write(tmp_path, "bad", body)
    segments, errors = load_segments(tmp_path)
    assert [s.id for s in segments] == ["good"]
    assert len(errors) == 1
    assert where in str(errors[0]), str(errors[0])


def test_reference_cycles_are_refused_with_the_segments_that_depend_on_them(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "a", "where:\n  in_segment: b\n")
    _write(tmp_path, "b", "where:\n  not:\n    in_segment: a\n")
    _write(tmp_path, "c", "where:\n  in_segment: a\n")
    _write(tmp_path, "d", "condition: 'true'\n")
    segments, errors = load_segments(tmp_path)
    assert [s.id for s in segments] == ["d"]
    messages = sorted(str(e) for e in errors)
    assert any("a.yaml:4: where: in_segment makes a cycle" in m for m in messages), messages
    assert any("b.yaml:5:" in m for m in messages), messages
    assert len(messages) == 3


def test_a_segment_needs_something_to_decide(tmp_path: Path) -> None:
    _write(tmp_path, "empty", "description: nothing\n")
    _, errors = load_segments(tmp_path)
    assert "empty.yaml" in str(errors[0])
    assert "condition" in str(errors[0])
