"""`journeyman bench segmenter`: real-time segment evaluation, segment-change latency and a full
RFM recompute, beside the raw pass-through baseline measured in the same run.

On the embedded PostgreSQL and Tansu broker (fresh, in a temporary directory): 20 segments of
every kind (CEL over the profile, windowed sums and counts, not-done, sequences, dates, segment
references), `jm.profile-events` records as the profile service publishes them, and the
segmenter's own consumer, relay and clock running in-process.

1. Throughput: one event per profile (orders, product views, checkouts) queued, then consumed
   at full speed; the same records through the raw pass-through baseline.
2. Latency: orders at a fixed rate, each making a new customer enter a segment; the time from
   producing the profile event to reading its Segment Entered on `jm.segment-changes`.
3. RFM: a purchase summary for every profile (seeded set-based), scored twice: the first run
   puts everyone in a segment (one change each, written to the outbox), the second finds none.

The base is seeded first (a snapshot per profile, set-based), so the measured events are
returning customers, each re-deciding only the segments its changes can reach; a profile seen
for the first time is decided against all 20 and costs more.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from rich.console import Console

from journeyman.bench.common import (
    CheckpointWatch,
    FixedRateLoad,
    Throughput,
    asyncpg_dsn,
    checkpoint_watch,
    cpu_shares,
    embedded_stack,
    fixed_rate_latency,
    infrastructure_pids,
    outbox_emptied,
    percent,
    percentile,
    produce_all,
    raw_passthrough,
    report,
)
from shared.kafka import ensure_topics
from shared.topics import PROFILE_EVENTS, SEGMENT_CHANGES

SIZES = {"small": 10_000, "default": 100_000, "large": 1_000_000}
LATENCY_RATE = 500  # events/s
LATENCY_EVENTS = {"small": 1_000, "default": 2_500, "large": 5_000}
NOW = datetime.now(UTC)

SEGMENTS: dict[str, str] = {
    "customers": "condition: profile.behaviour.orders_count >= 1",
    "big-spenders": "condition: profile.behaviour.total_revenue >= 500.0",
    "frequent": "condition: profile.behaviour.orders_count >= 5",
    "browsers": "condition: profile.behaviour.product_views >= 10",
    "french": "condition: profile.traits.country == 'FR'",
    "newsletter": "condition: profile.traits.newsletter == true",
    "refunders": "condition: profile.behaviour.refunds_count >= 1",
    "vip-fr": "where: {all: [{in_segment: big-spenders}, {in_segment: french}]}",
    "spend-30d": "where: {aggregate: sum, event: Order Completed, property: revenue,"
    " within_days: 30, op: '>=', value: 200}",
    "orders-90d": "where: {aggregate: count, event: Order Completed, within_days: 90, value: 2}",
    "avg-basket": "where: {aggregate: avg, event: Order Completed, property: revenue,"
    " within_days: 365, op: '>=', value: 80}",
    "max-order": "where: {aggregate: max, event: Order Completed, property: revenue,"
    " within_days: 365, op: '>=', value: 300}",
    "views-7d": "where: {aggregate: count, event: Product Viewed, within_days: 7, value: 3}",
    "lapsed": "where: {all: [{in_segment: customers}, {not_done: Order Completed, for_days: 60}]}",
    "abandoners": "where: {did: Checkout Started, then_not: Order Completed, within_hours: 4}",
    "birthday": "where: {anniversary: traits.birthday}",
    "quiet": "where: {days_since: behaviour.last_seen_at, value: 30}",
    "loyalty-silver": "where: {all: [{aggregate: sum, event: Order Completed, property: revenue,"
    " within_days: 365, value: 200}, {aggregate: sum, event: Order Completed,"
    " property: revenue, within_days: 365, op: '<', value: 500}]}",
    "loyalty-gold": "where: {aggregate: sum, event: Order Completed, property: revenue,"
    " within_days: 365, value: 500}",
    "not-customers": "where: {not: {in_segment: customers}}",
}


def _write_segments(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for seg_id, body in SEGMENTS.items():
        (directory / f"{seg_id}.yaml").write_text(f"id: {seg_id}\nname: {seg_id}\n{body}\n")


def _record(pid: str, version: int, event: str, at: datetime, **extra: Any) -> bytes:
    revenue = extra.get("revenue", 0.0)
    return orjson.dumps(
        {
            "event": {"type": "track", "event": event, "messageId": f"{pid}-{version}",
                      "userId": pid, "timestamp": at.isoformat(),
                      "properties": {"revenue": revenue} if revenue else {}},
            "profile": {
                "profile_id": pid, "version": version, "updated_at": at.isoformat(),
                "traits": {"country": extra.get("country", "FR"), "birthday": "1990-05-17"},
                "behaviour": {"orders_count": extra.get("orders", 0),
                              "total_revenue": extra.get("total", 0.0),
                              "product_views": extra.get("views", 0),
                              "last_seen_at": at.isoformat()},
                "consent": {},
            },
        }
    )  # fmt: skip


def _traffic(count: int, run: str, seed: int = 7) -> list[tuple[bytes | None, bytes]]:
    rng = random.Random(seed)  # noqa: S311  (synthetic data)
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(count):
        pid = f"{run}-{i}"
        at = NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        kind = rng.random()
        if kind < 0.4:
            value = round(rng.uniform(5, 400), 2)
            record = _record(pid, 1, "Order Completed", at, revenue=value, orders=1, total=value)
        elif kind < 0.8:
            record = _record(pid, 1, "Product Viewed", at, views=1)
        else:
            record = _record(pid, 1, "Checkout Started", at)
        out.append((pid.encode(), record))
    return out


async def seed_profiles(dsn: str, run: str, count: int) -> None:
    """The base as the segmenter knows it after some history (set-based): a snapshot per
    profile, so the measured events are returning customers, the steady state."""
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "INSERT INTO segmenter.profiles (profile_id, version, snapshot) "
            "SELECT $1 || '-' || i, 0, json_build_object('profile_id', $1 || '-' || i,"
            " 'version', 0, 'updated_at', '2026-01-01T00:00:00Z', 'consent', '{}'::json,"
            " 'traits', json_build_object('country', 'FR', 'birthday', '1990-05-17'),"
            " 'behaviour', json_build_object('orders_count', 0, 'total_revenue', 0,"
            "  'product_views', 0, 'last_seen_at', '2026-01-01T00:00:00+00:00')) "
            "FROM generate_series(0, $2 - 1) i",
            run,
            count,
        )
        await db.execute("ANALYZE segmenter.profiles")
    finally:
        await db.close()


async def seed_purchases(dsn: str, run: str, count: int) -> None:
    """A purchase summary for every profile of the base (as if long consumed)."""
    db = await asyncpg.connect(dsn)
    try:
        await db.execute(
            "INSERT INTO segmenter.purchases (profile_id, last_order_at, orders_count, monetary) "
            "SELECT $1 || '-' || i, now() - (random() * 400) * interval '1 day',"
            " 1 + floor(random() * 12)::int, round((random() * 2000)::numeric, 2) "
            "FROM generate_series(0, $2 - 1) i "
            "ON CONFLICT (profile_id) DO NOTHING",
            run,
            count,
        )
        await db.execute("ANALYZE segmenter.purchases")
    finally:
        await db.close()


async def _consume_all(app: Any, total: int) -> Throughput:
    """Start the segmenter and time it through `total` queued records."""
    runtime = app.state.runtime
    consumer = runtime.consumers[0]
    first_seen, base = 0.0, 0
    while consumer.processed < total:
        await asyncio.sleep(0.02)
        if not first_seen and consumer.processed:
            first_seen, base = time.perf_counter(), consumer.processed
    elapsed = time.perf_counter() - first_seen if first_seen else 0.0
    return Throughput(total - base, elapsed)


def _batches(group: str) -> tuple[float, float]:
    """(seconds, batches) the consumer has spent so far (its own histogram, same process)."""
    from shared.metrics import BATCH_SECONDS  # noqa: PLC0415

    total = count = 0.0
    for metric in BATCH_SECONDS.collect():
        for sample in metric.samples:
            if sample.labels.get("group") == group:
                if sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_count"):
                    count = sample.value
    return total, count


async def _outbox_drained(dsn: str) -> None:
    """Wait for the relay to publish the throughput phase's changes, so the latency phase
    measures the path of one change, not the queue behind it."""
    db = await asyncpg.connect(dsn)
    try:
        await outbox_emptied(db, "segmenter", 0.2)
        # What autovacuum would have done by now on a long-running base (it wakes once a
        # minute): fresh statistics and no dead outbox rows for the relay to step over.
        await db.execute(
            "VACUUM ANALYZE segmenter.outbox, segmenter.profiles, "
            "segmenter.memberships, segmenter.segment_timers, segmenter.facts"
        )
    finally:
        await db.close()


def _big_order(pid: str, _kind: str) -> bytes:
    """A known customer's (one event) order that makes them a big spender."""
    return _record(pid, 2, "Order Completed", datetime.now(UTC), revenue=600.0, orders=2,
                   total=600.0)  # fmt: skip


async def _latency(bootstrap: str, run: str, count: int) -> list[float]:
    """Orders at LATENCY_RATE/s, each making a known customer a big spender; ms from producing
    the profile event to reading its Segment Entered."""
    events = [(f"{run}-{i}", "order") for i in range(count)]
    load = FixedRateLoad(
        bootstrap, PROFILE_EVENTS, SEGMENT_CHANGES, LATENCY_RATE, events, _big_order,
        frozenset({"order"}), ("segment_id", "big-spenders"),
    )  # fmt: skip
    return await fixed_rate_latency(load)


async def _measure(pg_url: str, bootstrap: str, work: Path, size: str) -> dict[str, Any]:
    from services.segmenter.app import create_app  # noqa: PLC0415  (CLI starts fast)
    from services.segmenter.settings import SegmenterSettings  # noqa: PLC0415
    from shared.clock import SystemClock  # noqa: PLC0415

    count, run = SIZES[size], uuid.uuid4().hex[:6]
    await ensure_topics(bootstrap)
    _write_segments(work / "segments")
    records = _traffic(count, run)
    baseline = await raw_passthrough(bootstrap, pg_url, records)
    await seed_profiles(asyncpg_dsn(pg_url), run, count)
    await produce_all(bootstrap, PROFILE_EVENTS, records)
    settings = SegmenterSettings(
        database_url=pg_url, kafka_bootstrap_servers=bootstrap, service_name="bench-segmenter",
        segments_dir=str(work / "segments"), segmenter_rfm_file=str(work / "rfm.yaml"),
        segmenter_rfm_interval_s=10**9, kafka_session_timeout_ms=6_000, log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings, SystemClock())
    async with app.router.lifespan_context(app):
        realtime = await _consume_all(app, count)
        await _outbox_drained(asyncpg_dsn(pg_url))
        spent, batches = _batches("segmenter")
        async with checkpoint_watch(asyncpg_dsn(pg_url)) as checkpointed:
            with cpu_shares(infrastructure_pids(pg_url, bootstrap)) as shares:
                latencies = await _latency(bootstrap, run, LATENCY_EVENTS[size])
        spent_after, batches_after = _batches("segmenter")
        batch_ms = (spent_after - spent) / max(batches_after - batches, 1) * 1000
        await seed_purchases(asyncpg_dsn(pg_url), run, count)
        loop = app.state.runtime.state["clock_loop"]
        t0 = time.perf_counter()
        first = await loop.recompute_rfm()
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = await loop.recompute_rfm()
        second_s = time.perf_counter() - t0
    return {
        "size": size,
        "profiles": count,
        "segments": len(SEGMENTS),
        "baseline_events_per_s": round(baseline.per_second, 1),
        "segmenter_events_per_s": round(realtime.per_second, 1),
        "ratio_to_baseline": round(realtime.per_second / baseline.per_second, 3)
        if baseline.per_second
        else 0.0,
        "change_latency_p50_ms": round(percentile(latencies, 50), 1),
        "change_latency_p99_ms": round(percentile(latencies, 99), 1),
        "latency_samples": len(latencies),
        "latency_checkpoint_overlapped": checkpointed.overlapped,
        "latency_broker_cpu_pct": shares.of_one_core.get("broker"),
        "latency_postgres_cpu_pct": shares.of_one_core.get("postgres"),
        "latency_machine_busy_pct": shares.machine_busy,
        "latency_phase_batches": int(batches_after - batches),
        "latency_phase_mean_batch_ms": round(batch_ms, 1),
        "rfm_profiles": first["profiles"],
        "rfm_first_run_s": round(first_s, 2),
        "rfm_first_run_changes": first["entered"] + first["exited"],
        "rfm_second_run_s": round(second_s, 2),
        "rfm_second_run_changes": second["entered"] + second["exited"],
    }


def run(size: str, json_path: Path | None, console: Console) -> None:
    if size not in SIZES:
        raise ValueError(f"size is one of {', '.join(SIZES)}")
    with embedded_stack("segmenter") as (work, url, bootstrap):
        console.print(f"segmenter benchmark: {SIZES[size]:,} profiles, {len(SEGMENTS)} segments")
        figures = asyncio.run(_measure(url, bootstrap, work, size))
    rows = [
        ("raw baseline events/s", figures["baseline_events_per_s"]),
        ("segmenter events/s (20 segments)", figures["segmenter_events_per_s"]),
        ("ratio to baseline", f"{figures['ratio_to_baseline']:.1%}"),
        ("segment change latency p50 ms", figures["change_latency_p50_ms"]),
        ("segment change latency p99 ms", figures["change_latency_p99_ms"]),
        ("  mean consumer batch at that rate, ms", figures["latency_phase_mean_batch_ms"]),
        ("  a PostgreSQL checkpoint during it",
         str(CheckpointWatch(figures["latency_checkpoint_overlapped"]))),
        ("  broker / PostgreSQL CPU during it, % of one core",
         f"{percent(figures['latency_broker_cpu_pct'])} / "
         f"{percent(figures['latency_postgres_cpu_pct'])}"),
        ("  the machine's cores busy during it, %", figures["latency_machine_busy_pct"]),
        (f"RFM recompute, {figures['rfm_profiles']:,} customers, first run s",
         figures["rfm_first_run_s"]),
        ("RFM first run changes", figures["rfm_first_run_changes"]),
        ("RFM recompute, second run s", figures["rfm_second_run_s"]),
        ("RFM second run changes", figures["rfm_second_run_changes"]),
    ]  # fmt: skip
    report(console, "journeyman bench segmenter", rows, figures, json_path)
