"""The committed JSON Schemas and AsyncAPI document match the models, and the CLI validates the
shipped definitions."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from journeyman.cli import SCHEMAS_DIR, app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_committed_documents_are_up_to_date() -> None:
    result = runner.invoke(app, ["schemas", "--check"])
    assert result.exit_code == 0, result.output


def test_journey_schema_is_draft_07_and_knows_the_send_step() -> None:
    schema = json.loads((SCHEMAS_DIR / "journey.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "SendStep" in schema["definitions"]
    assert "$defs" not in json.dumps(schema)


def test_validate_accepts_the_shipped_files_and_points_at_bad_lines(tmp_path: Path) -> None:
    shipped = ["--journeys", str(ROOT / "journeys"), "--segments", str(ROOT / "segments")]
    ok = runner.invoke(app, ["validate", *shipped])
    assert ok.exit_code == 0, ok.output
    (tmp_path / "broken.yaml").write_text("id: broken\nname: B\nversion: 0\n")
    bad = runner.invoke(app, ["validate", "--journeys", str(tmp_path), "--segments", str(tmp_path)])
    assert bad.exit_code == 1
    assert "broken.yaml:3:1: version" in bad.output.replace("\n", "")
