"""`journeyman bench profile`: the profile consumer against the raw pass-through baseline.

On a fresh embedded stack (PostgreSQL and Tansu in a temporary directory, migrated), N
synthetic shop events for P customers (anonymous visits, identify with traits and consent,
product views and adds, orders) are measured twice on the same broker and database: (a) the
raw pass-through (consume a batch, decode JSON, one batched upsert, produce, commit) and (b)
the profile consumer (`services.profile.consumer.events_handler` driven by the shared
BatchConsumer, wired and started by `shared.runtime.Runtime` as the service is, its outbox
relayed to `jm.profile-events` / `jm.profiles`), then (c) the floor of
`journeyman.bench.profile_floor`: the service's own input and output with none of its logic,
which says how much of the gap to the baseline is the logic's. Throughput is
counted from the first batch until every event is applied and the outbox is empty; latency is
the time the handler takes per batch (decode, identity resolution, fold, one transaction).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from rich.console import Console

from journeyman.bench.common import (
    Throughput,
    asyncpg_dsn,
    outbox_emptied,
    produce_all,
    raw_passthrough,
    report,
)
from journeyman.bench.profile_floor import measure_floor
from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres
from journeyman.shop import CATALOGUE, customers, traffic
from services.profile.consumer import events_handler
from services.profile.models import outbox
from shared.consumer import Record, Rejected
from shared.kafka import ensure_topics
from shared.migrations import upgrade
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import EVENTS

SIZES = {"small": (20_000, 2_000), "default": (200_000, 20_000), "large": (1_000_000, 100_000)}
Records = list[tuple[bytes | None, bytes]]


def synthetic(events: int, profiles: int, seed: int = 7) -> Records:
    """Each customer's session (anonymous page, identify, views and adds, maybe an order), then
    more activity of random customers until `events`; keyed as a backend would key them."""
    rng = random.Random(seed)  # noqa: S311  (synthetic data)
    shoppers = customers(profiles, rng)
    run = f"bench-{uuid.uuid4().hex[:8]}"
    # Sessions are ~1.4 s of shop time per customer: start early enough that the last one still
    # lies in the past (events more than a day ahead are refused as bad input).
    start = datetime.now(UTC) - timedelta(seconds=2 * profiles + 600)
    messages = list(traffic(shoppers, rng, run, start))[:events]
    seq = len(messages)
    while len(messages) < events:
        c = rng.choice(shoppers)
        sku, name, price = rng.choice(CATALOGUE)
        seq += 1
        kind = rng.random()
        if kind < 0.6:
            body = {"event": "Product Viewed", "properties": {"product_id": sku, "name": name}}
        elif kind < 0.85:
            body = {"event": "Product Added", "properties": {"product_id": sku, "price": price}}
        else:
            body = {"event": "Order Completed", "properties": {"revenue": price}}
        messages.append(
            {"type": "track", "messageId": f"{run}-x{seq:08d}", "userId": c.user_id, **body}
        )
    out: Records = []
    for m in messages:
        key = f"user:{m['userId']}" if "userId" in m else f"anon:{m['anonymousId']}"
        out.append((key.encode(), orjson.dumps(m)))
    return out


async def _profile_consumer(settings: Settings, total: int) -> tuple[Throughput, int, float, int]:
    runtime = Runtime(settings)
    relay = runtime.add_relay(outbox)
    inner = events_handler(runtime, relay)
    timings: list[float] = []
    started: list[float] = []
    seen = [0]
    dead = [0]
    done = asyncio.Event()

    async def timed(records: Sequence[Record]) -> Sequence[Rejected]:
        t0 = time.perf_counter()
        if not started:
            started.extend((t0, time.process_time()))
        rejected = await inner(records)
        dead[0] += len(rejected)
        timings.append((time.perf_counter() - t0) * 1000)
        seen[0] += len(records)
        if seen[0] >= total:
            done.set()
        return rejected

    runtime.add_consumer([EVENTS], "bench-profile", timed)
    await runtime.start()  # as the service starts: GC tuning, producer, relay, consumer
    db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await done.wait()
        applied = time.perf_counter() - started[0]
        await outbox_emptied(db, "profile", 0.1)
        elapsed = time.perf_counter() - started[0]
        cpu = time.process_time() - started[1]
        profiles = int(await db.fetchval("SELECT count(*) FROM profile.profiles"))
    finally:
        await db.close()
        await runtime.stop()
    return Throughput(total, elapsed, timings, cpu), profiles, applied, dead[0]


async def measure(size: str, console: Console) -> dict[str, Any]:
    events, profiles = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="jm-bench-profile-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres")
        broker = EmbeddedKafka(log_file=Path(tmp) / "broker.log")
        url = await asyncio.to_thread(pg.start)
        try:
            bootstrap = await asyncio.to_thread(broker.start)
            await ensure_topics(bootstrap)
            await asyncio.to_thread(upgrade, url)
            records = synthetic(events, profiles)
            console.print(f"{len(records):,} events for {profiles:,} customers")
            console.print("baseline: raw pass-through …")
            baseline = await raw_passthrough(bootstrap, url, records)
            await produce_all(bootstrap, EVENTS, records)
            console.print("profile consumer …")
            settings = Settings(
                database_url=url, kafka_bootstrap_servers=bootstrap, service_name="bench-profile"
            )
            measured, stored, applied, dead = await _profile_consumer(settings, len(records))
            console.print("floor: the same input and output, no logic …")
            floor = await measure_floor(settings, len(records))
        finally:
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(pg.stop)
    ratio = measured.per_second / baseline.per_second if baseline.per_second else 0.0
    return {
        "benchmark": "profile",
        "size": size,
        "events": len(records),
        "customers": profiles,
        "profiles_stored": stored,
        "dead_lettered": dead,
        **baseline.figures("baseline"),
        **measured.figures("profile"),
        **floor.figures("floor"),
        "floor_ratio_to_baseline": round(floor.per_second / baseline.per_second, 3),
        "profile_applied_events_per_s": round(len(records) / applied, 1),
        "profile_mean_batch": round(len(records) / max(len(measured.batch_ms), 1), 1),
        "ratio_to_baseline": round(ratio, 3),
    }


def run(size: str, json_path: Path | None, console: Console) -> None:
    if size not in SIZES:
        raise ValueError(f"size: one of {', '.join(SIZES)}")
    figures = asyncio.run(measure(size, console))
    rows = [
        ("events (dead-lettered)", f"{figures['events']:,} ({figures['dead_lettered']:,})"),
        (
            "customers (profiles stored)",
            f"{figures['customers']:,} ({figures['profiles_stored']:,})",
        ),
        ("baseline events/s", float(figures["baseline_events_per_s"])),
        ("baseline batch p50 ms", float(figures["baseline_batch_p50_ms"])),
        ("baseline batch p99 ms", float(figures["baseline_batch_p99_ms"])),
        ("baseline CPU µs per event (this process)", figures["baseline_cpu_us_per_event"]),
        ("profile events/s", float(figures["profile_events_per_s"])),
        ("profile batch p50 ms", float(figures["profile_batch_p50_ms"])),
        ("profile batch p99 ms", float(figures["profile_batch_p99_ms"])),
        (
            "profile CPU µs per event (consumer, relay, producer)",
            figures["profile_cpu_us_per_event"],
        ),
        (
            "profile events/s applied (before the outbox drained)",
            float(figures["profile_applied_events_per_s"]),
        ),
        ("profile mean batch (events)", float(figures["profile_mean_batch"])),
        ("profile / baseline", f"{figures['ratio_to_baseline']:.0%}"),
        ("floor events/s (same input and output, no logic)", float(figures["floor_events_per_s"])),
        ("floor CPU µs per event", figures["floor_cpu_us_per_event"]),
        ("floor / baseline", f"{figures['floor_ratio_to_baseline']:.0%}"),
    ]
    report(console, f"profile consumer ({size})", rows, figures, json_path)
