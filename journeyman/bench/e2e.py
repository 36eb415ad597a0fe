"""`journeyman bench` (e2e): the whole system against its physical limit, in one command.

A synthetic shop's traffic goes straight onto `jm.events` of a running stack (four service
processes, the thank-you journey and the seven example journeys with their real durations, so
their waits pile up as pending timers; the shipped segments, 20 with the ten RFM ones; the
local SMTP inbox and the SMS / push provider server). Measured in the same run:
the raw pass-through baseline on the same broker and database; sustained end-to-end events/s at
full speed; event→send latency at a fixed rate; peak memory of each service; database bytes per
profile and per journey instance. It then checks that every expected thank-you was sent once,
that the inbox holds exactly the emails the attempt log says were sent (every journey), and that
none went to a customer without consent. Last, the timers: the example journeys' waits last hours
to days, so none falls due during the run; the benchmark seeds waiting instances of the journey
benchmark's timer journey in the running stack (timers due over a few seconds, then a backlog
already due) and reads lateness from the journey service's own histogram and firings/s from
the backlog's drain, with the four services at work as in production.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import Progress

from journeyman.bench.common import (
    CpuAccount,
    asyncpg_dsn,
    percentile,
    process_tree,
    produce_all,
    raw_passthrough,
    relation_bytes,
    report,
)
from journeyman.bench.journey import TIMER_JOURNEY, drained, seed_waiting
from journeyman.shop import customers, traffic
from journeyman.stack import Stack, StackInfo
from shared.topics import EVENTS

SIZES = {"small": 1_000, "default": 10_000, "large": 100_000}
FIXED_RATE = 2_000  # events/s for the latency phase
ORDER_EVERY = 10  # one event in ten is an order (and so a send); the rest are product views
FIXED_SECONDS = {"small": 5, "default": 10, "large": 20}
LATE_TIMERS = {"small": 5_000, "default": 10_000, "large": 20_000}  # due over LATE_SPAN_S
LATE_SPAN_S = 5
BACKLOG_TIMERS = {"small": 20_000, "default": 100_000, "large": 200_000}  # all due at once


@dataclass
class Shop:
    records: list[tuple[bytes | None, bytes]]
    expected_sent: int
    expected_refused: int
    consenting: list[str]


def _shop(count: int, seed: int = 42) -> Shop:
    rng = random.Random(seed)  # noqa: S311  (synthetic data)
    shoppers = customers(count, rng)
    run = f"bench-{uuid.uuid4().hex[:8]}"
    records: list[tuple[bytes | None, bytes]] = []
    for message in traffic(shoppers, rng, run):
        key = (
            f"user:{message['userId']}" if "userId" in message else f"anon:{message['anonymousId']}"
        )
        records.append((key.encode(), orjson.dumps(message)))
    return Shop(
        records,
        expected_sent=sum(1 for c in shoppers if c.buys and c.marketing_email),
        expected_refused=sum(1 for c in shoppers if c.buys and not c.marketing_email),
        consenting=[c.user_id for c in shoppers if c.marketing_email],
    )


class MemorySampler:
    """Peak resident memory of each service process, sampled twice a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for name, pid in self._pids.items():
                try:
                    rss = sum(p.memory_info().rss for p in process_tree(pid)) / 2**20
                except psutil.Error:
                    continue
                self.peak_mb[name] = max(self.peak_mb[name], rss)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _wait(probe: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Poll `probe` four times a second. Each probe counts the attempt log, a scan of most of
    it: polled every 0.1 s, the benchmark's own queries were the database's largest load."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(0.25)
    return False


THANK_YOU = "post-purchase-thank-you"  # one email per order: what the checks can predict
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"


async def _decided(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT status, count(*) AS n FROM channels.send_attempts WHERE journey_id = $1 GROUP BY 1",
        THANK_YOU,
    )
    return {r["status"]: r["n"] for r in rows}


async def _fixed_rate(bootstrap: str, shop: Shop, seconds: int, run: str) -> int:
    """Traffic from consenting customers at FIXED_RATE events/s, each stamped when produced; one
    event in ORDER_EVERY is an order, which the thank-you journey turns into an email. Returns
    the number of orders."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=1)
    await producer.start()
    sent, started = 0, time.perf_counter()
    try:
        while sent < FIXED_RATE * seconds:
            due = started + sent / FIXED_RATE
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            user = shop.consenting[sent % len(shop.consenting)]
            order = sent % ORDER_EVERY == 0
            message = {
                "type": "track", "event": "Order Completed" if order else "Product Viewed",
                "userId": user, "messageId": f"{run}-{sent}",
                "timestamp": datetime.now(UTC).isoformat(),
                "properties": {"order_id": f"{run}-{sent}", "revenue": 19.9, "product_id": "p1"},
            }  # fmt: skip
            await producer.send(EVENTS, value=orjson.dumps(message), key=f"user:{user}".encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return len(range(0, sent, ORDER_EVERY))


_FIXED_RATE_SENDS = (
    "FROM channels.send_attempts WHERE status = 'sent' AND journey_id = $2 "
    "AND request->'data'->'event'->>'messageId' LIKE $1"
)


async def _latencies(db: asyncpg.Connection, run: str) -> list[float]:
    rows = await db.fetch(
        "SELECT extract(epoch FROM finished_at - (request->'data'->'event'->>'timestamp')"  # noqa: S608
        f"::timestamptz) * 1000 AS ms {_FIXED_RATE_SENDS}",
        f"{run}-%",
        THANK_YOU,
    )
    return [float(r["ms"]) for r in rows]


async def _sent_at_fixed_rate(db: asyncpg.Connection, run: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) {_FIXED_RATE_SENDS}", f"{run}-%", THANK_YOU))


async def _bytes_per_row(db: asyncpg.Connection, schema: str, table: str) -> float:
    size = await db.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
        schema,
    )
    rows = await db.fetchval(f'SELECT count(*) FROM "{schema}"."{table}"')  # noqa: S608
    return float(size) / rows if rows else 0.0


async def _table_bytes_per_row(
    db: asyncpg.Connection, schema: str, tables: list[str], per: str
) -> float:
    """Bytes of some tables (indexes and TOAST included) per row of `per`."""
    size = await relation_bytes(db, schema, tables)
    rows = await db.fetchval(f'SELECT count(*) FROM "{schema}"."{per}"')  # noqa: S608
    return float(size) / rows if rows else 0.0


async def _measure(
    info: StackInfo, shop: Shop, size: str, progress: Progress, cpu: CpuAccount
) -> dict[str, Any]:
    figures: dict[str, Any] = {"size": size, "events": len(shop.records)}
    db = await asyncpg.connect(asyncpg_dsn(info.database_url))
    try:
        task = progress.add_task("raw baseline", total=None)
        baseline = await raw_passthrough(
            info.kafka_bootstrap_servers, info.database_url, shop.records
        )
        figures |= baseline.figures("baseline")
        progress.update(task, total=1, completed=1)

        before = await _decided(db)
        task = progress.add_task("full speed", total=shop.expected_sent + shop.expected_refused)
        started, cpu_before = time.perf_counter(), cpu.read()
        await produce_all(info.kafka_bootstrap_servers, EVENTS, shop.records)

        async def all_decided() -> bool:
            now = await _decided(db)
            done = sum(now.values()) - sum(before.values())
            progress.update(task, completed=done)
            return done >= shop.expected_sent + shop.expected_refused

        complete = await _wait(all_decided, timeout_s=600)
        elapsed = time.perf_counter() - started
        used = CpuAccount.per_event(cpu_before, cpu.read(), len(shop.records))
        figures |= {f"cpu_us_per_event_{part}": us for part, us in sorted(used.items())}
        figures["e2e_events_per_s"] = round(len(shop.records) / elapsed, 1)
        figures["e2e_complete"] = complete
        figures["e2e_vs_baseline"] = round(figures["e2e_events_per_s"] / baseline.per_second, 3)

        run = f"rate-{uuid.uuid4().hex[:6]}"
        seconds = FIXED_SECONDS[size]
        task = progress.add_task(f"{FIXED_RATE}/s for {seconds}s", total=None)
        fixed = await _fixed_rate(info.kafka_bootstrap_servers, shop, seconds, run)

        async def fixed_done() -> bool:
            return await _sent_at_fixed_rate(db, run) >= fixed

        await _wait(fixed_done, timeout_s=120)
        progress.update(task, total=1, completed=1)
        latencies = await _latencies(db, run)
        figures |= {
            "fixed_rate_events": fixed,
            "fixed_rate_sent": len(latencies),
            "latency_p50_ms": round(percentile(latencies, 50), 1),
            "latency_p95_ms": round(percentile(latencies, 95), 1),
            "latency_p99_ms": round(percentile(latencies, 99), 1),
            "db_bytes_per_profile": round(await _bytes_per_row(db, "profile", "profiles")),
            "db_bytes_per_profile_row": round(
                await _table_bytes_per_row(db, "profile", ["profiles", "identities"], "profiles")
            ),
            "db_bytes_per_timeline_event": round(
                await _table_bytes_per_row(db, "profile", ["timeline"], "timeline")
            ),
            "db_bytes_per_journey_instance": round(
                await _bytes_per_row(db, "journey", "instances")
            ),
        }
        figures |= await _correctness(db, info, shop, before, fixed)
        task = progress.add_task("timers", total=None)
        figures |= await _timers(info, size)
        progress.update(task, total=1, completed=1)
    finally:
        await db.close()
    return figures


async def _timers(info: StackInfo, size: str) -> dict[str, Any]:
    """Lateness of timers falling due while the system runs, and firings/s of a due backlog."""
    dsn, journey = asyncpg_dsn(info.database_url), info.services["journey"]
    run = f"t{uuid.uuid4().hex[:6]}"
    spread = LATE_TIMERS[size]
    before = await _lateness_buckets(journey)
    first = datetime.now(UTC) + timedelta(seconds=1)
    visible = await seed_waiting(dsn, f"{run}-late", spread, first, LATE_SPAN_S * 1000 / spread)
    await drained(dsn, f"{run}-late", 120, visible)
    late = {le: n - before.get(le, 0) for le, n in (await _lateness_buckets(journey)).items()}
    backlog = BACKLOG_TIMERS[size]
    visible = await seed_waiting(dsn, f"{run}-due", backlog, datetime.now(UTC), 0)
    seconds = await drained(dsn, f"{run}-due", 600, visible)
    return {
        "timers_late_seeded": spread,
        "timer_lateness_p50_s_at_most": _bucket_quantile(late, 0.5),
        "timer_lateness_p99_s_at_most": _bucket_quantile(late, 0.99),
        "timers_backlog": backlog,
        "timers_backlog_drain_s": round(seconds, 1),
        "timer_firings_per_s": round(backlog / seconds, 1) if seconds else 0.0,
    }


async def _lateness_buckets(journey_url: str) -> dict[float, float]:
    """The journey service's lateness histogram: cumulative count by upper bound (s)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{journey_url}/metrics")).text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "journey_timer_lateness_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }


def _bucket_quantile(cumulative: dict[float, float], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile `q` (what a bucket can say)."""
    total = cumulative.get(float("inf"), 0)
    if not total:
        return None
    return next(le for le, n in sorted(cumulative.items()) if n >= q * total)


async def _correctness(
    db: asyncpg.Connection, info: StackInfo, shop: Shop, before: dict[str, int], fixed: int
) -> dict[str, Any]:
    now = await _decided(db)
    sent = now.get("sent", 0) - before.get("sent", 0)
    refused = now.get("suppressed", 0) - before.get("suppressed", 0)
    without_consent = await db.fetchval(
        "SELECT count(*) FROM channels.send_attempts a JOIN channels.contacts c USING (profile_id) "
        "WHERE a.status = 'sent' AND a.message_type <> 'transactional' AND "
        "coalesce((c.snapshot->'consent'->a.channel->a.message_type->>'granted')::boolean, false) "
        "= false"
    )
    emails = await asyncio.to_thread(lambda: len(list(Path(info.outbox_dir).glob("*.eml"))))
    emails_sent = await db.fetchval(
        "SELECT count(*) FROM channels.send_attempts WHERE status = 'sent' AND channel = 'email'"
    )
    by_journey = await db.fetch(
        "SELECT journey_id, count(*) AS n FROM channels.send_attempts WHERE status = 'sent' "
        "GROUP BY 1 ORDER BY 1"
    )
    timers = await db.fetchval("SELECT count(*) FROM journey.timers")
    expected = shop.expected_sent + fixed
    return {
        "sent": sent,
        "expected_sent": expected,
        "refused_no_consent": refused,
        "expected_refused": shop.expected_refused,
        "sent_without_consent": without_consent,
        "emails_in_inbox": emails,
        "emails_sent_all_journeys": emails_sent,
        "sent_by_journey": {r["journey_id"]: r["n"] for r in by_journey},
        "pending_timers": timers,
        "correct": sent == expected
        and refused == shop.expected_refused
        and without_consent == 0
        and emails == emails_sent,
    }


def run(size: str, json_path: Path | None, console: Console) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    shop = _shop(SIZES[size])
    with tempfile.TemporaryDirectory(prefix="jm-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
        timer_journeys = Path(home) / "bench-journeys"  # the timers phase's journey
        timer_journeys.mkdir()
        (timer_journeys / "bench-timers.yaml").write_text(TIMER_JOURNEY)
        env["JOURNEYMAN_JOURNEY_EXTRA_DIRS"] = orjson.dumps(
            [str(EXAMPLES), str(timer_journeys)]
        ).decode()
        stack = Stack(
            Path(home), env=env, echo_logs=False, say=lambda m: console.print(f"[cyan]bench[/] {m}")
        )
        try:
            info = stack.start()
            services = {k: v for k, v in info.pids.items() if k != "inbox"}
            cpu = CpuAccount(info.pids | stack.infrastructure_pids())
            with MemorySampler(services) as memory, Progress(console=console) as progress:
                figures = asyncio.run(_measure(info, shop, size, progress, cpu))
            figures |= {f"peak_rss_mb_{k}": round(v, 1) for k, v in memory.peak_mb.items()}
        finally:
            stack.stop()
    f = figures
    latency = f"{f['latency_p50_ms']} / {f['latency_p95_ms']} / {f['latency_p99_ms']}"
    memory_rows = [
        (f"peak memory {k[12:]} (MB)", v) for k, v in f.items() if k.startswith("peak_rss")
    ]
    cpu_rows = [(f"  {k[17:]}", v) for k, v in f.items() if k.startswith("cpu_us_per_event_")]
    rows = [
        ("events (synthetic shop)", figures["events"]),
        ("raw baseline events/s", figures["baseline_events_per_s"]),
        ("end-to-end events/s", figures["e2e_events_per_s"]),
        ("end-to-end / baseline", f"{figures['e2e_vs_baseline']:.1%}"),
        ("CPU µs per event at full speed, by process", ""),
        *cpu_rows,
        (f"event→send ms p50/p95/p99 at {FIXED_RATE} ev/s", latency),
        ("database bytes per profile (whole profile schema)", figures["db_bytes_per_profile"]),
        ("  of which profile row + identities", figures["db_bytes_per_profile_row"]),
        ("  timeline bytes per stored event", figures["db_bytes_per_timeline_event"]),
        ("database bytes per journey instance", figures["db_bytes_per_journey_instance"]),
        *memory_rows,
        ("thank-you emails sent / expected", f"{figures['sent']} / {figures['expected_sent']}"),
        ("emails in the inbox / sent by every journey",
         f"{figures['emails_in_inbox']} / {figures['emails_sent_all_journeys']}"),
        *((f"  sent by {j}", n) for j, n in figures["sent_by_journey"].items()),
        ("journey timers pending at the end", figures["pending_timers"]),
        (f"timers due over {LATE_SPAN_S}s: lateness p50 / p99 at most (s)",
         f"{figures['timer_lateness_p50_s_at_most']} / {figures['timer_lateness_p99_s_at_most']}"
         f" of {figures['timers_late_seeded']:,}"),
        (f"due backlog of {figures['timers_backlog']:,} timers: firings/s",
         figures["timer_firings_per_s"]),
        ("sent without consent", figures["sent_without_consent"]),
        ("correct", "yes" if figures["correct"] else "NO"),
    ]  # fmt: skip
    report(console, f"Journeyman end-to-end benchmark ({size})", rows, figures, json_path)
