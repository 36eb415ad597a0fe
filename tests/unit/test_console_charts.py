"""Server-side SVG charts and the journey graph: the numbers are in the markup, text is
escaped, and the graph puts every step below the steps that lead to it, loops included."""

from __future__ import annotations

import re

from services.profile.console.charts import bar_chart, line_chart
from services.profile.console.graph import journey_svg, layers


def test_line_chart_carries_every_value_and_leaves_gaps_for_missing_ones() -> None:
    svg = str(line_chart("nps", "NPS", ["Jan", "Feb", "Mar"], [("NPS", [10.0, None, -20.0])]))
    assert re.findall(r'data-value="([^"]+)"', svg) == ["10.0", "-20.0"]
    assert 'data-chart="nps"' in svg


def test_bar_chart_escapes_labels() -> None:
    svg = str(bar_chart("x", "<b>", ["<script>"], [("a&b", [3])]))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'data-value="3"' in svg


def test_layers_follow_the_longest_path_and_survive_loops() -> None:
    nodes = [{"id": n} for n in ("start", "branch", "sms", "done", "retry")]
    edges = [
        {"from": "start", "to": "branch"}, {"from": "branch", "to": "sms"},
        {"from": "branch", "to": "done"}, {"from": "sms", "to": "done"},
        {"from": "done", "to": "retry"}, {"from": "retry", "to": "start"},  # a loop back
    ]  # fmt: skip
    assert layers(nodes, edges) == {"start": 0, "branch": 1, "sms": 2, "done": 3, "retry": 4}


def test_journey_svg_shows_counts_on_steps_and_branches() -> None:
    stats = {
        "steps": [{"step_id": "b", "entered": 7, "waiting": 1, "exited": 0,
                   "branches": {"yes": 5}}],
        "graph": {"nodes": [{"id": "a", "type": "trigger", "label": "Start"},
                            {"id": "b", "type": "branch", "label": "Opened?"}],
                  "edges": [{"from": "a", "to": "b", "label": None},
                            {"from": "b", "to": "a", "label": "yes"}]},
    }  # fmt: skip
    svg = str(journey_svg(stats))
    assert 'data-step="b" data-entered="7"' in svg
    assert "entered 7 · waiting 1 · exited 0" in svg
    assert 'data-label="yes" data-value="5"' in svg
