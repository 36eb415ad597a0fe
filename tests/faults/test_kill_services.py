"""Kill -9 each service in turn in the middle of a steady event stream and restart it.

Afterwards every profile update happened exactly once, every segment membership is right, and
every order's email reached the SMTP server at most once; an order whose email is missing must be
accounted for by a send attempt the kill cut off (left `sending` or reported `unknown`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from journeyman.bench.common import asyncpg_dsn
from journeyman.embedded import free_port
from journeyman.stack import SERVICES, Stack, StackInfo
from shared.topics import EVENTS

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 40
ORDERS_EACH = 3
ORDER_ID = re.compile(r"order (kill-\w+-\d+-\d+)")


@pytest.fixture
def stack(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env |= {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        # A killed member holds its partitions until its session expires: keep that short.
        "JOURNEYMAN_KAFKA_SESSION_TIMEOUT_MS": "3000",
    }
    running = Stack(
        tmp_path / "home", env=env, ports={n: free_port() for n in SERVICES},
        echo_logs=False, project_dir=ROOT,
    )  # fmt: skip
    try:
        running.start(timeout_s=120)
        yield running
    finally:
        running.stop()


def _identify(run: str, i: int) -> dict[str, object]:
    return {
        "type": "identify", "messageId": f"{run}-id-{i}", "userId": f"{run}-u{i}",
        "traits": {"first_name": f"C{i}", "email": f"c{i}.{run}@example.com",
                   "consent": {"email": {"marketing": True}}},
    }  # fmt: skip


def _order(run: str, i: int, n: int) -> dict[str, object]:
    return {
        "type": "track", "event": "Order Completed", "messageId": f"{run}-o-{i}-{n}",
        "userId": f"{run}-u{i}", "properties": {"order_id": f"kill-{run}-{i}-{n}", "revenue": 10},
    }  # fmt: skip


async def _stream(stack: Stack, info: StackInfo, run: str) -> None:
    """Identities first, then orders at a steady pace while each service is killed in turn."""
    producer = AIOKafkaProducer(
        bootstrap_servers=info.kafka_bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for i in range(CUSTOMERS):
            message = _identify(run, i)
            await producer.send(EVENTS, orjson.dumps(message), key=f"user:{run}-u{i}".encode())
        orders = [(i, n) for n in range(ORDERS_EACH) for i in range(CUSTOMERS)]
        victims = iter(SERVICES)
        for k, (i, n) in enumerate(orders):
            await producer.send(
                EVENTS, orjson.dumps(_order(run, i, n)), key=f"user:{run}-u{i}".encode()
            )
            if k % (len(orders) // len(SERVICES)) == 10:
                victim = next(victims, None)
                if victim is not None:
                    await producer.flush()
                    await asyncio.sleep(0.3)  # let the victim get into its batch
                    stack.kill(victim)
                    await asyncio.to_thread(stack.restart, victim)
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()


def _emails_by_order(outbox: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        found.update(ORDER_ID.findall(body.get_content()))
    return found


async def _settled(db: asyncpg.Connection, expected: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        attempts = await db.fetchval("SELECT count(*) FROM channels.send_attempts")
        if attempts >= expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"only {attempts} of {expected} send attempts after {timeout_s}s")


async def test_kill_each_service_mid_stream(stack: Stack) -> None:
    info = stack.info
    assert info is not None
    run = uuid.uuid4().hex[:6]
    await _stream(stack, info, run)
    expected_orders = CUSTOMERS * ORDERS_EACH
    db = await asyncpg.connect(asyncpg_dsn(info.database_url))
    try:
        await _settled(db, expected_orders)
        await asyncio.sleep(1.0)  # the last accepted messages reach the inbox files
        # Profiles: every update exactly once.
        counts = await db.fetch(
            "SELECT user_id, (behaviour->>'orders_count')::int AS orders FROM profile.profiles "
            "WHERE user_id LIKE $1",
            f"{run}-u%",
        )
        assert len(counts) == CUSTOMERS
        assert {r["orders"] for r in counts} == {ORDERS_EACH}
        # Segments: every customer in `customers` exactly once.
        members = await db.fetchval(
            "SELECT count(*) FROM segmenter.memberships m JOIN profile.profiles p "
            "USING (profile_id) WHERE m.segment_id = 'customers' AND p.user_id LIKE $1",
            f"{run}-u%",
        )
        assert members == CUSTOMERS
        # Sends: one attempt per order; never two emails for one order.
        statuses = Counter(
            r["status"]
            for r in await db.fetch(
                "SELECT status FROM channels.send_attempts WHERE journey_id = "
                "'post-purchase-thank-you'"
            )
        )
        emails = _emails_by_order(Path(info.outbox_dir))
        assert max(emails.values()) == 1, [k for k, v in emails.items() if v > 1]
        assert sum(statuses.values()) == expected_orders
        cut_off = statuses["sending"] + statuses["unknown"]
        assert statuses["sent"] + cut_off == expected_orders
        assert len(emails) >= statuses["sent"]
        assert len(emails) <= statuses["sent"] + cut_off
    finally:
        await db.close()
