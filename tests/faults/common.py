"""What the fault tests share: a stack on the test's broker and database, a steady order stream,
and the exactly-once checks made afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from journeyman.bench.common import asyncpg_dsn
from journeyman.embedded import free_port
from journeyman.stack import SERVICES, Stack, StackInfo
from shared.topics import EVENTS
from tests import reliability

ROOT = Path(__file__).resolve().parents[2]
ORDER_ID = re.compile(r"order (fault-\w+-\d+-\d+)")


def make_stack(home: Path, database_url: str, kafka_bootstrap: str) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
    env |= {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        # A killed member holds its partitions until its session expires: keep that short.
        "JOURNEYMAN_KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    return Stack(
        home, env=env, ports={n: free_port() for n in SERVICES}, echo_logs=False,
        project_dir=ROOT,
    )  # fmt: skip


def identify(run: str, i: int) -> dict[str, object]:
    return {
        "type": "identify", "messageId": f"{run}-id-{i}", "userId": f"{run}-u{i}",
        "traits": {"first_name": f"C{i}", "email": f"c{i}.{run}@example.com",
                   "consent": {"email": {"marketing": True}}},
    }  # fmt: skip


def order(run: str, i: int, n: int) -> dict[str, object]:
    return {
        "type": "track", "event": "Order Completed", "messageId": f"{run}-o-{i}-{n}",
        "userId": f"{run}-u{i}", "properties": {"order_id": f"fault-{run}-{i}-{n}", "revenue": 10},
    }  # fmt: skip


async def stream(
    info: StackInfo,
    run: str,
    customers: int,
    orders_each: int,
    faults: dict[int, Callable[[], Awaitable[None]]],
) -> None:
    """Identities, then orders every 10 ms; `faults[k]` runs after the k-th order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=info.kafka_bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for i in range(customers):
            key = f"user:{run}-u{i}".encode()
            await producer.send(EVENTS, orjson.dumps(identify(run, i)), key=key)
        orders = [(i, n) for n in range(orders_each) for i in range(customers)]
        for k, (i, n) in enumerate(orders):
            key = f"user:{run}-u{i}".encode()
            await producer.send(EVENTS, orjson.dumps(order(run, i, n)), key=key)
            if k in faults:
                await producer.flush()
                await faults[k]()
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()


def emails_by_order(outbox: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        found.update(ORDER_ID.findall(body.get_content()))
    return found


async def _where_they_are(db: asyncpg.Connection, run: str) -> str:
    """How far the run's orders got through each stage, to say where a missing one stopped."""
    queries = {
        "profiles": "SELECT count(*) FROM profile.profiles WHERE user_id LIKE $1",
        "instances": "SELECT count(*) FROM journey.instances i JOIN profile.profiles p "
        "USING (profile_id) WHERE p.user_id LIKE $1",
        "journey outbox": "SELECT count(*) FROM journey.outbox WHERE $1 <> ''",
        "deferred": "SELECT count(*) FROM channels.deferred WHERE $1 <> ''",
        "channels outbox": "SELECT count(*) FROM channels.outbox WHERE $1 <> ''",
    }
    found = {name: await db.fetchval(sql, f"{run}-u%") for name, sql in queries.items()}
    return ", ".join(f"{name}: {n}" for name, n in found.items())


async def assert_exactly_once(
    info: StackInfo, run: str, customers: int, orders_each: int, timeout_s: float = 120
) -> Counter[str]:
    """Every profile update once, every membership once, no order emailed twice, and every
    missing email accounted for by an attempt the fault cut off. Returns attempt statuses."""
    expected = customers * orders_each
    db = await asyncpg.connect(asyncpg_dsn(info.database_url))
    try:
        deadline = time.monotonic() + timeout_s
        while (
            attempts := await db.fetchval("SELECT count(*) FROM channels.send_attempts")
        ) < expected:
            assert time.monotonic() < deadline, (
                f"{attempts} of {expected} attempts; " + await _where_they_are(db, run)
            )
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # the last accepted messages reach the inbox files
        counts = await db.fetch(
            "SELECT (behaviour->>'orders_count')::int AS orders FROM profile.profiles "
            "WHERE user_id LIKE $1",
            f"{run}-u%",
        )
        assert len(counts) == customers
        assert {r["orders"] for r in counts} == {orders_each}
        members = await db.fetchval(
            "SELECT count(*) FROM segmenter.memberships m JOIN profile.profiles p "
            "USING (profile_id) WHERE m.segment_id = 'customers' AND p.user_id LIKE $1",
            f"{run}-u%",
        )
        assert members == customers
        statuses = Counter(
            r["status"]
            for r in await db.fetch(
                "SELECT status FROM channels.send_attempts "
                "WHERE journey_id = 'post-purchase-thank-you'"
            )
        )
    finally:
        await db.close()
    emails = emails_by_order(Path(info.outbox_dir))
    assert max(emails.values()) == 1, [k for k, v in emails.items() if v > 1]
    assert sum(statuses.values()) == expected
    cut_off = statuses["sending"] + statuses["unknown"]
    assert statuses["sent"] + cut_off == expected
    assert statuses["sent"] <= len(emails) <= statuses["sent"] + cut_off
    reliability.record(
        events_streamed=customers * (orders_each + 1),
        events_lost=0,
        duplicate_sends=0,
        messages_received=len(emails),
        unknown_attempts_reported=cut_off,
    )
    return statuses
