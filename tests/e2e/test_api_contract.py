"""Schemathesis against every service's OpenAPI, on the running processes: generated and
mutated requests (bad types, missing fields, odd characters) never get a 5xx, and every answer
matches the documented status codes and schemas."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from journeyman.embedded import free_port
from journeyman.stack import SERVICES, Stack, StackInfo
from tests.conftest import Infra

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """One stack for all services' contract runs (embedded broker of its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    home = tmp_path_factory.mktemp("contract")
    env["DATABASE_URL"] = infra.database_url
    running = Stack(
        home, env=env, ports={n: free_port() for n in SERVICES}, echo_logs=False,
        project_dir=ROOT,
    )  # fmt: skip
    try:
        yield running.start(timeout_s=120)
    finally:
        running.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_errors_and_documented_answers(stack: StackInfo, service: str) -> None:
    url = stack.services[service]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
            "--checks", CHECKS, "--max-examples", "15", "--seed", "7",
            "-H", f"Authorization: Bearer {stack.api_key}",
            "--exclude-path-regex", "^/v1/(track|identify|page|screen|alias|group|batch)$",
            "--request-timeout", "10", "--no-color",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ingestion_with_its_write_key(stack: StackInfo) -> None:
    url = stack.services["profile"]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
            "--checks", CHECKS, "--max-examples", "15", "--seed", "7",
            "--auth", f"{stack.write_key}:",
            "--include-path-regex", "^/v1/(track|identify|page|screen|alias|group|batch)$",
            "--request-timeout", "10", "--no-color",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
