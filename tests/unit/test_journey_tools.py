"""Journeys as code: `validate` over a set of broken files prints the expected
file:line:col messages; `simulate` shows the path and the rendered messages; `diagram` draws."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from journeyman.cli import app

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "data" / "journeys-broken"
SIMULATE = ROOT / "tests" / "data" / "journey-simulate"
runner = CliRunner()


def test_validate_prints_each_problem_at_its_line_and_column() -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            str(BROKEN.relative_to(ROOT)),
            "--segments",
            str(ROOT / "segments"),
            "--templates",
            str(ROOT / "templates"),
        ],
        terminal_width=400,
    )
    assert result.exit_code == 1
    expected = (BROKEN / "expected.txt").read_text().splitlines()
    printed = [line for line in result.output.splitlines() if line.startswith("tests/")]
    assert printed == expected


def test_validate_accepts_every_shipped_journey() -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            str(ROOT / "journeys"),
            str(ROOT / "examples" / "journeys"),
            "--segments",
            str(ROOT / "segments"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert result.exit_code == 0, result.output
    shipped = [
        *(ROOT / "journeys").glob("*.yaml"),
        *(ROOT / "examples" / "journeys").glob("*.yaml"),
    ]
    assert len(shipped) >= 8  # the thank-you journey and the seven examples at least
    assert f"{len(shipped)} of {len(shipped)} journeys" in result.output


def test_simulate_prints_the_path_and_rendered_messages() -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            str(ROOT / "examples" / "journeys" / "cart-abandonment.yaml"),
            "--profile",
            str(SIMULATE / "profile.json"),
            "--events",
            str(SIMULATE / "cart-events.jsonl"),
            "--templates",
            str(ROOT / "templates"),
            "--days",
            "3",
        ],
        terminal_width=400,
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        "2026-03-02T14:00:00+00:00  [wait-for-order] timed out waiting for Order Completed" in out
    )
    assert "2026-03-03T14:00:00+00:00  [last-call] send email cart-last-call" in out
    assert "[subject] You left something in your cart" in out
    assert "Your cart c-1 is still waiting for you" in out  # rendered from the trigger event
    assert "Hello Ana," in out


def test_diagram_writes_mermaid_and_svg(tmp_path: Path) -> None:
    """`make test` installs Graphviz, so the SVG is drawn here (without `dot` a user gets the
    Mermaid file alone)."""
    assert shutil.which("dot"), "Graphviz is needed to draw journeys as SVG (make test installs it)"
    journey = ROOT / "examples" / "journeys" / "post-delivery-survey.yaml"
    result = runner.invoke(app, ["diagram", str(journey), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    mermaid = (tmp_path / "post-delivery-survey.mmd").read_text()
    assert mermaid.startswith("flowchart TD")
    assert "s_score -->|detractor| s_flag_detractor" in mermaid
    assert "s_answer -->|timeout| s_done" in mermaid
    svg = (tmp_path / "post-delivery-survey.svg").read_text()
    assert "<svg" in svg
    assert "flag&#45;detractor" in svg  # the step, as Graphviz escapes its hyphen
    assert "wait_for_event: Survey Responded within 7d" in svg
