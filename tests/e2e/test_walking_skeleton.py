"""The walking skeleton: the four services as separate processes, from `POST /v1/track` to an
`.eml` file in the local inbox, with keys, bad input and readiness checked on the way."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from journeyman.embedded import free_port
from journeyman.stack import SERVICES, Stack, StackInfo

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[StackInfo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env |= {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOURNEYMAN_KAFKA_SESSION_TIMEOUT_MS": "2000",  # Tansu answers a join after half of it
    }
    running = Stack(
        tmp_path / "home",
        env=env,
        ports={name: free_port() for name in SERVICES},
        echo_logs=False,
        project_dir=ROOT,
    )
    try:
        yield running.start(timeout_s=120)
    finally:
        running.stop()


def _wait_for_mail(outbox: Path, timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = sorted(outbox.glob("*.eml"))
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no .eml in {outbox} after {timeout_s}s")


def test_order_completed_becomes_a_thank_you_email(stack: StackInfo) -> None:
    run = uuid.uuid4().hex[:8]
    user, email = f"e2e-{run}", f"zelie.{run}@example.com"
    api = stack.services["profile"]
    auth = (stack.write_key, "")
    with httpx.Client(base_url=api, timeout=10) as client:
        identify = {
            "userId": user, "messageId": f"{run}-id",
            "traits": {"first_name": "Zélie", "email": email,
                       "consent": {"email": {"marketing": True}}},
        }  # fmt: skip
        assert client.post("/v1/identify", json=identify, auth=auth).json() == {"success": True}
        order = {
            "userId": user, "messageId": f"{run}-order", "event": "Order Completed",
            "properties": {"order_id": f"o-{run}", "revenue": 64.9, "currency": "EUR"},
        }  # fmt: skip
        assert client.post("/v1/track", json=order, auth=auth).status_code == 200

    mail = BytesParser(policy=policy.default).parsebytes(
        _wait_for_mail(Path(stack.outbox_dir)).read_bytes()
    )
    assert mail["To"] == email
    assert "Zélie" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hello Zélie" in text
    assert f"o-{run}" in text

    ops = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(timeout=10) as client:
        stats = client.get(f"{stack.services['channels']}/v1/sends/stats", headers=ops).json()
        assert stats == {"sent": 1}
        journeys = client.get(f"{stack.services['journey']}/v1/journeys", headers=ops).json()
        thanks = {j["id"]: j for j in journeys["journeys"]}["post-purchase-thank-you"]
        assert thanks["instances"] == {"completed": 1}


def test_keys_bad_input_and_readiness(stack: StackInfo) -> None:
    api = stack.services["profile"]
    good = {
        "type": "track",
        "userId": "k",
        "event": "Product Viewed",
        "messageId": uuid.uuid4().hex,
    }
    with httpx.Client(base_url=api, timeout=10) as client:
        missing = client.post("/v1/track", json=good)
        assert missing.status_code == 401
        assert "write key" in missing.json()["detail"]
        wrong = client.post("/v1/track", json=good, auth=("nope", ""))
        assert wrong.status_code == 401
        no_event = client.post("/v1/track", json={"userId": "k"}, auth=(stack.write_key, ""))
        assert no_event.status_code == 400
        assert "event" in no_event.json()["detail"]
        bad_json = client.post(
            "/v1/track", content=b"{oops", auth=(stack.write_key, ""),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        assert bad_json.status_code == 400
        bad_batch = client.post(
            "/v1/batch", json={"batch": [good, {"type": "track", "userId": "k"}]},
            auth=(stack.write_key, ""),
        )  # fmt: skip
        assert bad_batch.status_code == 400
        assert "batch.1.event" in bad_batch.json()["detail"]
        untyped = client.post(
            "/v1/batch", json={"batch": [{"userId": "k"}]}, auth=(stack.write_key, "")
        )
        assert untyped.json()["detail"].startswith("batch.0.type: must be one of track")
        ops_missing = client.get("/v1/profiles/user:k")
        assert ops_missing.status_code == 401
        assert "API key" in ops_missing.json()["detail"]
        assert client.post("/v1/track", json=good, auth=(stack.write_key, "")).status_code == 200
    with httpx.Client(timeout=10) as client:
        for name, url in stack.services.items():
            assert client.get(f"{url}/healthz").status_code == 200, name
            ready = client.get(f"{url}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert "jm_records_consumed_total" in client.get(f"{url}/metrics").text


def test_readyz_names_the_dependency_that_is_down(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "JOURNEYMAN_SEGMENTS_DIR": str(ROOT / "segments"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "journeyman.cli", "serve", "segmenter", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["database"].startswith("unreachable")
        assert checks["broker"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
