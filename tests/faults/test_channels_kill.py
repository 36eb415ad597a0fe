"""Kill -9 the channels service in the middle of a batch of sends and start it again: no
dispatch reaches the SMTP server twice (except a transactional one whose attempt was cut off,
retried as configured), every message received is accounted for by the attempt log, and every
attempt the crash cut off is reported as unknown (API and metric)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import asyncpg
import httpx
import pytest

from journeyman.bench.common import asyncpg_dsn
from journeyman.embedded import free_port
from journeyman.inbox import SmtpInbox
from shared.settings import Settings
from shared.topics import DISPATCH
from tests import reliability
from tests.channels_support import ROOT, dispatch, granted, snapshot
from tests.helpers import produce

pytestmark = pytest.mark.faults
COUNT = 600


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SmtpInbox]:
    with SmtpInbox(tmp_path / "inbox") as running:
        yield running


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "journeyman.cli", "serve", "channels", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "channels exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("channels not ready")


def _received(inbox: SmtpInbox) -> Counter[str]:
    parser = BytesParser(policy=policy.default)
    return Counter(
        str(parser.parsebytes(p.read_bytes())["X-Journeyman-Dispatch-Id"]) for p in inbox.messages()
    )


async def test_kill_mid_batch_sends_nothing_twice_and_reports_every_unknown(
    settings: Settings, inbox: SmtpInbox, tmp_path: Path, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env |= {
        "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "JOURNEYMAN_KAFKA_SESSION_TIMEOUT_MS": "2000", "JOURNEYMAN_KAFKA_MAX_BATCH": "100",
        "JOURNEYMAN_SMTP_HOST": inbox.host, "JOURNEYMAN_SMTP_PORT": str(inbox.port),
        "JOURNEYMAN_EMAIL_RATE_PER_S": "150",  # slow enough to be killed mid-batch
        "JOURNEYMAN_UNKNOWN_AFTER_S": "2", "JOURNEYMAN_TEMPLATES_DIR": str(ROOT / "templates"),
        "JOURNEYMAN_API_KEYS": '[{"key": "ops", "scope": "read"}]',
    }  # fmt: skip
    port, log = free_port(), tmp_path / "channels.log"
    records = []
    for i in range(COUNT):
        kind = "transactional" if i % 2 else "marketing"
        profile = snapshot(f"k{i}", email=f"k{i}@example.com",
                           consent=granted("email", "marketing"))  # fmt: skip
        records.append(dispatch(f"kill-{i}", f"k{i}", message_type=kind, profile=profile))
    proc = _start(env, port, log)
    try:
        await asyncio.to_thread(_wait_ready, port, proc)
        await produce(settings, DISPATCH, records)
        deadline = time.monotonic() + 60
        while len(inbox.messages()) < COUNT // 5:
            assert time.monotonic() < deadline, "sends never started"
            await asyncio.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-batch: attempts claimed, provider called
        proc.wait()
        killed_at = len(inbox.messages())
        assert killed_at < COUNT

        proc = _start(env, port, log)
        await asyncio.to_thread(_wait_ready, port, proc)
        db = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            deadline = time.monotonic() + 120
            while True:
                pending = await db.fetchval(
                    "SELECT count(*) FROM channels.send_attempts "
                    "WHERE status IN ('sending', 'deferred')"
                )
                total = await db.fetchval("SELECT count(*) FROM channels.send_attempts")
                if total == COUNT and pending == 0:
                    break
                assert time.monotonic() < deadline, f"{total} attempts, {pending} pending"
                await asyncio.sleep(0.5)
            rows = await db.fetch("SELECT * FROM channels.send_attempts")
        finally:
            await db.close()
        await asyncio.sleep(0.5)  # the last accepted messages reach the inbox files
        received = _received(inbox)
        unknown = {r["dispatch_id"] for r in rows if r["was_unknown"]}
        retried = {r["dispatch_id"] for r in rows
                   if r["was_unknown"] and r["message_type"] == "transactional"}  # fmt: skip
        sent = {r["dispatch_id"] for r in rows if r["status"] == "sent"}
        statuses = Counter(r["status"] for r in rows)
        assert set(statuses) <= {"sent", "unknown"}, statuses
        # never twice, except a cut-off transactional attempt retried as configured
        twice = {d for d, n in received.items() if n > 1}
        assert twice <= retried, twice - retried
        assert max(received.values()) <= 2
        # every sent attempt arrived; everything that arrived is sent or reported unknown
        assert sent <= set(received)
        assert set(received) <= sent | unknown
        # a cut-off marketing attempt is never retried: it stays unknown
        assert all(r["status"] == "unknown" for r in rows
                   if r["was_unknown"] and r["message_type"] == "marketing")  # fmt: skip
        assert unknown, "the kill cut nothing off: the test proved nothing"
        headers = {"Authorization": "Bearer ops"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            reported = (await client.get("/v1/messages/unknown", headers=headers)).json()
            metrics = (await client.get("/metrics")).text
        assert {a["dispatch_id"] for a in reported["attempts"]} == unknown
        assert f"jm_channels_unknown_attempts {float(len(unknown))}" in metrics
        reliability.record(
            faults_survived=1, duplicate_sends=len(twice - retried),
            unknown_attempts_reported=len(unknown), messages_received=sum(received.values()),
        )  # fmt: skip
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
