"""`journeyman bench journey`: events through the journey engine, event-to-dispatch latency of
immediate sends, timer firings and lateness, and a large backlog of due timers drained, beside
the raw pass-through baseline measured in the same run.

On the embedded PostgreSQL and Tansu broker (fresh, in a temporary directory), with the seven
example journeys, the thank-you journey and one timer journey loaded, and the journey service's
consumer, relay and timer worker running in-process (SystemClock, real durations):

1. Throughput: one `jm.profile-events` record per customer (sign-ups, checkouts, orders with
   beans, deliveries, product views) queued, then consumed at full speed; the same records
   through the raw pass-through baseline. One replica, as the baseline is one process.
2. Latency: the same mix at a fixed rate; for each sign-up (the welcome journey sends at
   once), the time from producing the profile event to reading its dispatch on `jm.dispatch`.
   Then again with every event a sign-up, the heaviest kind, as a stress reading. The load
   runs in its own process.
3. Lateness: timers due over a few seconds at a steady rate; how late each fired.
4. Backlog: N instances waiting on timers that are all due (set-based seed), drained by the
   worker: firings/s and the time to drain. Each firing moves an instance, sends a message
   (a dispatch through the outbox) and completes it.

Phases 2-4 run the engine as `--replicas` processes (default 2, one per core of the machine
the targets were set on): the in-process one and `journeyman serve journey` beside it, in the
same consumer group, claiming timers with SKIP LOCKED, as an operator scales the service out.
`--replicas 1` measures one process alone.
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
from journeyman.bench.replicas import DEFAULT_REPLICAS, partitions_shared, service_replicas
from shared.kafka import ensure_topics
from shared.topics import DISPATCH, PROFILE_EVENTS

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"small": 10_000, "default": 100_000, "large": 100_000}
BACKLOG = {"small": 20_000, "default": 1_000_000, "large": 1_000_000}
LATENCY_RATE = 2_000  # events/s
LATENCY_EVENTS = {"small": 4_000, "default": 20_000, "large": 40_000}  # the mix: 1/6 sign-ups
WARM_UP_EVENTS = {"small": 2_000, "default": 4_000, "large": 4_000}
SIGN_UP_EVENTS = {"small": 1_000, "default": 10_000, "large": 20_000}  # every one a sign-up
LATENESS_TIMERS = {"small": 4_000, "default": 20_000, "large": 20_000}
LATENESS_SPAN_S = 5.0
TIMER_JOURNEY = """id: bench-timers
name: Timer benchmark
version: 1
trigger: {event: Bench Timer}
steps:
  - {id: pause, type: wait, duration: 1h}
  - {id: ping, type: send, channel: email, template: welcome}
"""


def _record(pid: str, mid: str, name: str, at: datetime, **props: Any) -> bytes:
    return orjson.dumps(
        {
            "event": {
                "type": "track",
                "event": name,
                "messageId": mid,
                "userId": pid,
                "timestamp": at.isoformat(),
                "properties": props,
            },
            "profile": {
                "profile_id": pid,
                "version": 2,
                "user_id": pid,
                "updated_at": at.isoformat(),
                "traits": {
                    "first_name": "Ana",
                    "email": f"{pid}@example.com",
                    "birthday": "1990-05-17",
                    "timezone": "Europe/Paris",
                },
                "behaviour": {"orders_count": 1},
                "consent": {},
            },
        }
    )


MIX = (  # (share, event): the mix a shop sends; about half start an instance
    (0.15, "Signed Up"),
    (0.20, "Checkout Started"),
    (0.15, "Order Completed"),
    (0.10, "Order Delivered"),
    (0.40, "Product Viewed"),
)


def _kinds(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)  # noqa: S311  (synthetic data)
    names, shares = zip(*((name, share) for share, name in MIX), strict=True)
    return rng.choices(names, weights=shares, k=count)


def _event(pid: str, name: str, at: datetime) -> bytes:
    """The first event of customer `pid`, with the properties the journeys read."""
    by_name: dict[str, dict[str, Any]] = {
        "Checkout Started": {"cart_id": f"cart-{pid}"},
        "Order Completed": {"cart_id": f"c-{pid}", "revenue": 30.0,
                            "products": [{"product_id": "sku-espresso", "price": 24.9}]},
        "Order Delivered": {"order_id": f"o-{pid}"},
        "Product Viewed": {"product_id": "sku-mug"},
    }  # fmt: skip
    return _record(pid, f"{pid}-1", name, at, **by_name.get(name, {}))


def _event_now(pid: str, name: str) -> bytes:
    return _event(pid, name, datetime.now(UTC))


def _traffic(count: int, run: str) -> list[tuple[bytes | None, bytes]]:
    """One event per customer, in the shop's mix."""
    now = datetime.now(UTC)
    return [
        (f"{run}-{i}".encode(), _event(f"{run}-{i}", name, now))
        for i, name in enumerate(_kinds(count))
    ]


async def _consume_all(app: Any, total: int) -> tuple[Throughput, float]:
    """The consumer's throughput, and the CPU seconds this process spent meanwhile."""
    consumer = app.state.runtime.consumers[0]
    first_seen, base, cpu = 0.0, 0, 0.0
    while consumer.processed < total:
        await asyncio.sleep(0.02)
        if not first_seen and consumer.processed:
            first_seen, base, cpu = time.perf_counter(), consumer.processed, time.process_time()
    elapsed = time.perf_counter() - first_seen if first_seen else 0.0
    return Throughput(total - base, elapsed), time.process_time() - cpu


async def _outbox_empty(dsn: str, started: float) -> float:
    """Seconds from `started` until every outbox record written so far was published."""
    db = await asyncpg.connect(dsn)
    try:
        await outbox_emptied(db, "journey", 0.05)
    finally:
        await db.close()
    return time.perf_counter() - started


async def _outbox_drained(dsn: str) -> None:
    db = await asyncpg.connect(dsn)
    try:
        await outbox_emptied(db, "journey", 0.05)
        await db.execute("VACUUM ANALYZE journey.outbox, journey.instances, journey.timers")
    finally:
        await db.close()


async def _latency(bootstrap: str, run: str, count: int, *, mixed: bool) -> list[float]:
    """`count` events at LATENCY_RATE/s; ms from producing each sign-up to reading its welcome
    dispatch. `mixed`: the shop's mix (a sixth are sign-ups); else every event a sign-up, the
    heaviest kind (an instance, two timers, a send), as a stress reading."""
    kinds = _kinds(count, seed=11) if mixed else ["Signed Up"] * count
    events = [(f"{run}-new-{i}", kind) for i, kind in enumerate(kinds)]
    load = FixedRateLoad(
        bootstrap, PROFILE_EVENTS, DISPATCH, LATENCY_RATE, events, _event_now,
        frozenset({"Signed Up"}), ("template", "welcome"),
    )  # fmt: skip
    return await fixed_rate_latency(load)


async def seed_waiting(
    dsn: str, prefix: str, count: int, first_due: datetime, step_ms: float
) -> float:
    """`count` instances of the timer journey waiting, their timers due from `first_due`,
    one every `step_ms` (0: all at once), and the customers' snapshots (set-based). Returns
    the moment (perf_counter) they became visible: the worker may start on them at once."""
    db = await asyncpg.connect(dsn)
    try:
        async with db.transaction():
            await db.execute(
                "INSERT INTO journey.profiles (profile_id, version, snapshot) "
                "SELECT $1 || '-' || i, 1, json_build_object('profile_id', $1 || '-' || i,"
                " 'version', 1, 'user_id', $1 || '-' || i, 'updated_at', '2026-01-01T00:00:00Z',"
                " 'traits', json_build_object('email', $1 || '-' || i || '@example.com'),"
                " 'behaviour', '{}'::json, 'consent', '{}'::json) "
                "FROM generate_series(0, $2 - 1) i ON CONFLICT DO NOTHING",
                prefix,
                count,
            )
            await db.execute(
                "INSERT INTO journey.instances (instance_id, journey_id, journey_version,"
                " profile_id, entry_key, status, current_step, grp, entered_at, state) "
                "SELECT $1 || '-' || i, 'bench-timers', 1, $1 || '-' || i, 'seed', 'active',"
                " 'pause', 'treatment', now(), json_build_object("
                "  'trigger', json_build_object('type', 'track', 'event', 'Bench Timer',"
                "   'properties', '{}'::json), 'visits', json_build_object('pause', 1),"
                "  'waiting', json_build_object('step', 'pause', 'token', 'pause:1',"
                "   'timer_id', $1 || '-' || i || ':pause:1'), 'history', '[]'::json) "
                "FROM generate_series(0, $2 - 1) i",
                prefix,
                count,
            )
            await db.execute(
                "INSERT INTO journey.timers (timer_id, kind, due_at, journey_id, instance_id,"
                " profile_id, token) "
                "SELECT $1 || '-' || i || ':pause:1', 'step',"
                " $3::timestamptz + (i * $4::float8) * interval '1 millisecond', 'bench-timers',"
                " $1 || '-' || i, $1 || '-' || i, 'pause:1' "
                "FROM generate_series(0, $2 - 1) i",
                prefix,
                count,
                first_due,
                step_ms,
            )
            # Inside the transaction (it counts its own rows): the drain clock starts at the
            # commit, and nothing else runs on the database after it.
            await db.execute("ANALYZE journey.timers, journey.instances, journey.profiles")
        return time.perf_counter()
    finally:
        await db.close()


async def drained(dsn: str, prefix: str, timeout_s: float, started: float) -> float:
    """Seconds from `started` until no timer of `prefix` is left."""
    db = await asyncpg.connect(dsn)
    try:
        while await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM journey.timers WHERE timer_id LIKE $1 || '-%')", prefix
        ):
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"timers of {prefix} not drained in {timeout_s}s")
            await asyncio.sleep(0.1)
    finally:
        await db.close()
    return time.perf_counter() - started


async def _completed(dsn: str, prefix: str) -> int:
    """Instances of `prefix` that reached their end: timers fired, whichever replica fired them."""
    db = await asyncpg.connect(dsn)
    try:
        return int(
            await db.fetchval(
                "SELECT count(*) FROM journey.instances"
                " WHERE instance_id LIKE $1 || '-%' AND status = 'completed'",
                prefix,
            )
        )
    finally:
        await db.close()


async def _measure(
    pg_url: str, bootstrap: str, work: Path, size: str, replicas: int
) -> dict[str, Any]:
    from services.journey.app import create_app  # noqa: PLC0415  (CLI starts fast)
    from services.journey.settings import JourneySettings  # noqa: PLC0415

    count, run = SIZES[size], uuid.uuid4().hex[:6]
    dsn = asyncpg_dsn(pg_url)
    await ensure_topics(bootstrap)
    (work / "journeys").mkdir()
    (work / "journeys" / "bench-timers.yaml").write_text(TIMER_JOURNEY)
    records = _traffic(count, run)
    baseline = await raw_passthrough(bootstrap, pg_url, records)
    await produce_all(bootstrap, PROFILE_EVENTS, records)
    settings = JourneySettings(
        database_url=pg_url,
        kafka_bootstrap_servers=bootstrap,
        service_name="bench-journey",
        journeys_dir=str(ROOT / "journeys"),
        journey_extra_dirs=[str(ROOT / "examples" / "journeys"), str(work / "journeys")],
        kafka_session_timeout_ms=6_000,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        worker = app.state.runtime.state["timers"]
        through, consume_cpu_s = await _consume_all(app, count)
        await _outbox_drained(dsn)
        consumer = app.state.runtime.consumers[0]
        async with service_replicas("journey", replicas - 1, settings, work) as others:
            await partitions_shared(consumer, replicas)
            # The new replicas' first batches pay for cold caches (statements prepared, pools
            # filled, code paths first run), which the in-process one paid in the throughput
            # phase: a warm-up at the same rate, not measured.
            await _latency(bootstrap, f"{run}-warm", WARM_UP_EVENTS[size], mixed=True)
            await _outbox_drained(dsn)
            pids = infrastructure_pids(pg_url, bootstrap)
            async with checkpoint_watch(dsn) as mix_checkpointed:
                with cpu_shares(pids) as mix_cpu:
                    latencies = await _latency(
                        bootstrap, f"{run}-mix", LATENCY_EVENTS[size], mixed=True
                    )
            await _outbox_drained(dsn)
            async with checkpoint_watch(dsn) as up_checkpointed:
                with cpu_shares(pids) as up_cpu:
                    stressed = await _latency(
                        bootstrap, f"{run}-up", SIGN_UP_EVENTS[size], mixed=False
                    )
            await _outbox_drained(dsn)
            spread = LATENESS_TIMERS[size]
            worker.lateness_s.clear()
            start = datetime.now(UTC) + timedelta(seconds=1)
            await seed_waiting(dsn, f"{run}-late", spread, start, LATENESS_SPAN_S * 1000 / spread)
            await drained(dsn, f"{run}-late", 120, time.perf_counter())
            lateness = list(worker.lateness_s)  # the firings of this process's replica
            await _outbox_drained(dsn)
            backlog = BACKLOG[size]
            past = datetime.now(UTC) - timedelta(hours=1)
            async with checkpoint_watch(dsn) as drain_checkpointed:
                visible = await seed_waiting(dsn, f"{run}-due", backlog, past, 0)
                cpu = time.process_time() + others.cpu_s()
                drain_s = await drained(dsn, f"{run}-due", 1_800, visible)
                drain_cpu_s = time.process_time() + others.cpu_s() - cpu
            # The relay publishes the firings' dispatches behind the workers, on the same loop.
            published_s = await _outbox_empty(dsn, visible)
        fired = await _completed(dsn, f"{run}-due")
    ratio = through.per_second / baseline.per_second if baseline.per_second else 0.0
    return {
        "size": size,
        "customers": count,
        "journeys": 9,
        "replicas": replicas,
        "baseline_events_per_s": round(baseline.per_second, 1),
        "journey_events_per_s": round(through.per_second, 1),
        "ratio_to_baseline": round(ratio, 3),
        "dispatch_latency_p50_ms": round(percentile(latencies, 50), 1),
        "dispatch_latency_p99_ms": round(percentile(latencies, 99), 1),
        "latency_rate_per_s": LATENCY_RATE,
        "latency_samples": len(latencies),
        "latency_checkpoint_overlapped": mix_checkpointed.overlapped,
        "latency_broker_cpu_pct": mix_cpu.of_one_core.get("broker"),
        "latency_postgres_cpu_pct": mix_cpu.of_one_core.get("postgres"),
        "latency_machine_busy_pct": mix_cpu.machine_busy,
        "sign_up_only_dispatch_latency_p50_ms": round(percentile(stressed, 50), 1),
        "sign_up_only_dispatch_latency_p99_ms": round(percentile(stressed, 99), 1),
        "sign_up_only_checkpoint_overlapped": up_checkpointed.overlapped,
        "sign_up_only_broker_cpu_pct": up_cpu.of_one_core.get("broker"),
        "sign_up_only_machine_busy_pct": up_cpu.machine_busy,
        "lateness_timers": spread,
        "lateness_samples": len(lateness),
        "timer_lateness_p50_ms": round(percentile(lateness, 50) * 1000, 1),
        "timer_lateness_p99_ms": round(percentile(lateness, 99) * 1000, 1),
        "backlog_timers": backlog,
        "backlog_fired": fired,
        "backlog_drain_s": round(drain_s, 1),
        "timer_firings_per_s": round(backlog / drain_s, 1) if drain_s else 0.0,
        "backlog_published_s": round(published_s, 1),
        "backlog_checkpoint_overlapped": drain_checkpointed.overlapped,
        # CPU of the journey process (consumer, worker, relay and producer together) per
        # event, and of every replica per firing: steadier than rates on a shared machine.
        "cpu_us_per_event": round(consume_cpu_s / max(through.events, 1) * 1e6, 1),
        "cpu_us_per_firing": round(drain_cpu_s / max(fired, 1) * 1e6, 1),
    }


def run(
    size: str, json_path: Path | None, console: Console, replicas: int = DEFAULT_REPLICAS
) -> None:
    if size not in SIZES:
        raise ValueError(f"size is one of {', '.join(SIZES)}")
    if replicas < 1:
        raise ValueError("replicas is at least 1")
    with embedded_stack("journey") as (work, url, bootstrap):
        console.print(
            f"journey benchmark: {SIZES[size]:,} customers, 9 journeys, "
            f"{BACKLOG[size]:,} due timers; {replicas} engine replica(s) after the throughput phase"
        )
        figures = asyncio.run(_measure(url, bootstrap, work, size, replicas))
    rows = [
        ("raw baseline events/s (one process)", figures["baseline_events_per_s"]),
        ("journey engine events/s (one replica)", figures["journey_events_per_s"]),
        ("ratio to baseline", f"{figures['ratio_to_baseline']:.1%}"),
        ("engine replicas from here on", figures["replicas"]),
        (f"event->dispatch p50 ms at {LATENCY_RATE} ev/s", figures["dispatch_latency_p50_ms"]),
        (f"event->dispatch p99 ms at {LATENCY_RATE} ev/s", figures["dispatch_latency_p99_ms"]),
        (
            "  same rate, every event a sign-up: p50 ms",
            figures["sign_up_only_dispatch_latency_p50_ms"],
        ),
        (
            "  same rate, every event a sign-up: p99 ms",
            figures["sign_up_only_dispatch_latency_p99_ms"],
        ),
        (
            "  a PostgreSQL checkpoint during the mix / the sign-ups",
            f"{CheckpointWatch(figures['latency_checkpoint_overlapped'])} / "
            f"{CheckpointWatch(figures['sign_up_only_checkpoint_overlapped'])}",
        ),
        (
            "  broker CPU during the mix / the sign-ups, % of one core",
            f"{percent(figures['latency_broker_cpu_pct'])} / "
            f"{percent(figures['sign_up_only_broker_cpu_pct'])}",
        ),
        (
            "  PostgreSQL CPU during the mix, % of one core",
            percent(figures["latency_postgres_cpu_pct"]),
        ),
        (
            "  the machine's cores busy during the mix / the sign-ups, %",
            f"{figures['latency_machine_busy_pct']} / {figures['sign_up_only_machine_busy_pct']}",
        ),
        ("timer lateness p50 ms (this process's firings)", figures["timer_lateness_p50_ms"]),
        ("timer lateness p99 ms (this process's firings)", figures["timer_lateness_p99_ms"]),
        (f"{figures['backlog_timers']:,} due timers drained, s", figures["backlog_drain_s"]),
        ("timer firings/s", figures["timer_firings_per_s"]),
        ("  the same timers' dispatches all published, s", figures["backlog_published_s"]),
        (
            "  a PostgreSQL checkpoint during the seeding or the drain",
            str(CheckpointWatch(figures["backlog_checkpoint_overlapped"])),
        ),
        ("journey process CPU µs per event", figures["cpu_us_per_event"]),
        ("journey replicas' CPU µs per firing", figures["cpu_us_per_firing"]),
    ]
    report(console, "journeyman bench journey", rows, figures, json_path)
