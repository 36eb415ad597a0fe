"""`journeyman console` prints where the console of a running stack answers, and its key."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from typer.testing import CliRunner

from journeyman.cli import app
from journeyman.stack import StackInfo

runner = CliRunner()


def test_prints_the_console_url_and_key_of_the_running_stack(tmp_path: Path) -> None:
    info = StackInfo(
        home=str(tmp_path), database_url="postgresql://x", kafka_bootstrap_servers="127.0.0.1:1",
        embedded_database=True, embedded_broker=True, smtp="127.0.0.1:2", outbox_dir="o",
        services={"profile": "http://127.0.0.1:9101"}, api_key="jm_ops_abc",
    )  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(asdict(info)))
    result = runner.invoke(app, ["console", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:9101/console" in result.output
    assert "jm_ops_abc" in result.output


def test_says_nothing_runs_without_a_stack(tmp_path: Path) -> None:
    result = runner.invoke(app, ["console", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "journeyman up" in result.output
