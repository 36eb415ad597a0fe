"""`journeyman bench capacity`: what the database holds at scale, and whether the engine still
runs at full speed beside it (the end-to-end issue's "1M profiles held with at most 2 KB each"
and "10M pending timers held; 20,000 firings/s").

On a fresh embedded PostgreSQL and Tansu broker:

1. **Profiles.** A sample of the synthetic shop's customers (every event of their sessions:
   anonymous visit, identify with traits and consent, views, adds, checkout, order, delivery)
   goes through the profile service's own consumer handler, so the rows are exactly the ones
   the service writes. The sample's profile rows, identities and consent history are then
   copied set-based under new ids (`<id>~<n>`; profile ids, UUIDs, a UUID made from that)
   until the base holds N customers. After a VACUUM (what autovacuum does on a running base)
   it prints the bytes per profile, indexes and TOAST included, and times looking customers
   up by identifier through the service's repository.
   The timeline is not copied: its bytes are printed per stored event of the sample.
2. **Timers.** The journey service runs (its consumer, timer workers and relay). 100,000 due
   timers of a one-wait journey are drained with the timer table nearly empty: the baseline of
   the same run. Then M pending timers (due over the next 60 days), each with its waiting
   instance, ten instances per customer snapshot, are seeded set-based in chunks; after a
   VACUUM it prints the bytes per pending timer and per instance, and drains 100,000 due
   timers again, now beside the M pending ones. 100,000 rather than 20,000: a drain meant to
   show a rate of 20,000/s must last several seconds, or the worker's first poll (up to
   0.2 s) and its first and last batches are most of what it measures.

Seeding copies rather than replaying: replaying 1M customers' sessions through the consumer
would take most of an hour here, and the measured rows are the consumer's own either way.
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
    asyncpg_dsn,
    embedded_stack,
    percentile,
    relation_bytes,
    report,
)
from journeyman.bench.journey import ROOT, TIMER_JOURNEY, _outbox_drained, seed_waiting
from journeyman.shop import customers, traffic
from shared.consumer import Record
from shared.kafka import ensure_topics
from shared.topics import EVENTS

SIZES = {  # (customers held, pending timers held)
    "small": (100_000, 1_000_000),
    "default": (1_000_000, 10_000_000),
    "large": (2_000_000, 20_000_000),
}
SAMPLE_CUSTOMERS = 5_000
DUE_TIMERS = 100_000
LOOKUPS = 2_000
TIMER_CHUNK = 1_000_000  # pending timers (and instances) seeded per transaction
INSTANCES_PER_CUSTOMER = 10
BATCH = 2_000


async def _sample_through_profile_service(url: str, count: int) -> int:
    """The sample's sessions through the profile consumer's handler; returns events applied."""
    from services.profile.consumer import events_handler  # noqa: PLC0415  (CLI starts fast)
    from services.profile.models import outbox  # noqa: PLC0415
    from shared.runtime import Runtime  # noqa: PLC0415
    from shared.settings import Settings  # noqa: PLC0415

    rng = random.Random(7)  # noqa: S311  (synthetic data)
    start = datetime.now(UTC) - timedelta(seconds=2 * count + 600)
    messages = list(traffic(customers(count, rng), rng, f"cap-{uuid.uuid4().hex[:6]}", start))
    records = [
        Record(EVENTS, 0, i, (m.get("userId") or m["anonymousId"]).encode(),
               orjson.dumps(m), {}, (), 0)
        for i, m in enumerate(messages)
    ]  # fmt: skip
    runtime = Runtime(Settings(database_url=url, service_name="bench-capacity"))
    relay = runtime.add_relay(outbox)  # never started: nothing is published from here
    handle = events_handler(runtime, relay)
    try:
        for i in range(0, len(records), BATCH):
            rejected = await handle(records[i : i + BATCH])
            if rejected:
                raise RuntimeError(f"the profile service refused sample events: {rejected[0]}")
    finally:
        await relay.stop()
        await runtime.producer.stop()
        await runtime.engine.dispose()
    return len(records)


# Columns whose values are ids: suffixed in the copies so every copy is a new customer. Profile
# ids are UUIDs (identities store them as such): a copy's is the UUID of `<id>~<n>`'s md5.
_ID_COLUMNS = {"user_id", "anonymous_id", "identity"}


def _copied(column: str) -> str:
    """The SQL for `column`'s value in copy `k`."""
    if column == "profile_id":
        return f"md5({column} || '~' || k)::uuid"
    return f"{column} || '~' || k" if column in _ID_COLUMNS else column


async def _copy_rows(db: asyncpg.Connection, table: str, copies: int) -> None:
    """`copies` copies of the sample's rows of `profile.<table>`, ids suffixed `~<n>`."""
    columns = [
        (name, generated)
        for name, generated in await db.fetch(
            "SELECT column_name, is_identity = 'YES' OR column_default LIKE 'nextval%' "
            "FROM information_schema.columns WHERE table_schema = 'profile' "
            "AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
    ]
    names = [n for n, generated in columns if not generated]
    values = [_copied(n) for n in names]
    await db.execute(  # one statement: it reads only the rows there before it
        f"INSERT INTO profile.{table} ({', '.join(names)}) "  # noqa: S608 (catalogue names)
        f"SELECT {', '.join(values)} FROM profile.{table}, generate_series(1, $1) AS k",
        copies,
    )


async def _lookups(url: str, identities: list[str]) -> list[float]:
    """ms to read a customer by identifier, as the ops API does (its repository function)."""
    from services.profile.repository import get_profile  # noqa: PLC0415
    from shared.db import create_engine  # noqa: PLC0415
    from shared.settings import Settings  # noqa: PLC0415

    engine = create_engine(Settings(database_url=url, service_name="bench-capacity"))
    timings: list[float] = []
    try:
        async with engine.connect() as conn:
            for identity in identities:
                t0 = time.perf_counter()
                found = await get_profile(conn, identity)
                timings.append((time.perf_counter() - t0) * 1000)
                if found is None:
                    raise RuntimeError(f"copied customer {identity} not found")
    finally:
        await engine.dispose()
    return timings


async def _profiles(url: str, held: int, console: Console) -> dict[str, Any]:
    dsn = asyncpg_dsn(url)
    console.print(f"profiles: {SAMPLE_CUSTOMERS:,} customers' sessions through the service …")
    events = await _sample_through_profile_service(url, SAMPLE_CUSTOMERS)
    db = await asyncpg.connect(dsn)
    try:
        await db.execute("TRUNCATE profile.outbox")  # the relay's, not the customers' bytes
        await db.execute("VACUUM ANALYZE")
        sample = int(await db.fetchval("SELECT count(*) FROM profile.profiles"))
        timeline_rows = int(await db.fetchval("SELECT count(*) FROM profile.timeline"))
        timeline_bytes = await relation_bytes(db, "profile", ["timeline"])
        copies = max(held // sample - 1, 0)
        console.print(f"profiles: copying them to {sample * (copies + 1):,} customers …")
        t0 = time.perf_counter()
        for table in ("profiles", "identities", "consent_history"):
            await _copy_rows(db, table, copies)
        copy_s = time.perf_counter() - t0
        await db.execute("VACUUM ANALYZE profile.profiles, profile.identities,"
                         " profile.consent_history")  # fmt: skip
        total = int(await db.fetchval("SELECT count(*) FROM profile.profiles"))
        core = await relation_bytes(db, "profile", ["profiles", "identities"])
        consent = await relation_bytes(db, "profile", ["consent_history"])
        identities = int(await db.fetchval("SELECT count(*) FROM profile.identities"))
        rng = random.Random(3)  # noqa: S311
        wanted = [
            f"{row[0]}~{rng.randint(1, copies)}" if copies else row[0]
            for row in await db.fetch(
                "SELECT identity FROM profile.identities WHERE identity LIKE 'user:%' "
                "AND identity NOT LIKE '%~%' ORDER BY random() LIMIT $1",
                LOOKUPS,
            )
        ]
    finally:
        await db.close()
    timings = await _lookups(url, wanted)
    return {
        "sample_customers": sample,
        "sample_events": events,
        "profiles_held": total,
        "identities_held": identities,
        "profile_copy_s": round(copy_s, 1),
        "profile_bytes_per_profile": round(core / total, 1),
        "consent_history_bytes_per_profile": round(consent / total, 1),
        "timeline_bytes_per_event": round(timeline_bytes / max(timeline_rows, 1), 1),
        "lookup_by_identifier_p50_ms": round(percentile(timings, 50), 2),
        "lookup_by_identifier_p99_ms": round(percentile(timings, 99), 2),
    }


async def _seed_pending(dsn: str, prefix: str, count: int, console: Console) -> float:
    """`count` waiting instances of the timer journey, each with its pending timer (due over
    the next 60 days), ten instances per customer snapshot; in chunks. Returns seconds."""
    db = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    try:
        customers_needed = max(count // INSTANCES_PER_CUSTOMER, 1)
        await db.execute(
            "INSERT INTO journey.profiles (profile_id, version, snapshot) "
            "SELECT $1 || '-p' || i, 1, json_build_object('profile_id', $1 || '-p' || i,"
            " 'version', 1, 'user_id', $1 || '-p' || i, 'updated_at', '2026-01-01T00:00:00Z',"
            " 'traits', json_build_object('email', $1 || '-p' || i || '@example.com',"
            "  'first_name', 'Ana', 'timezone', 'Europe/Paris'),"
            " 'behaviour', json_build_object('orders_count', 1), 'consent', '{}'::json) "
            "FROM generate_series(0, $2 - 1) i",
            prefix,
            customers_needed,
        )
        for first in range(0, count, TIMER_CHUNK):
            last = min(first + TIMER_CHUNK, count) - 1
            async with db.transaction():
                await db.execute(
                    "INSERT INTO journey.instances (instance_id, journey_id, journey_version,"
                    " profile_id, entry_key, status, current_step, grp, entered_at, state) "
                    "SELECT $1 || '-' || i, 'bench-timers', 1, $1 || '-p' || (i % $4),"
                    " 'seed-' || i, 'active', 'pause', 'treatment', now(), json_build_object("
                    "  'trigger', json_build_object('type', 'track', 'event', 'Bench Timer',"
                    "   'properties', '{}'::json), 'visits', json_build_object('pause', 1),"
                    "  'waiting', json_build_object('step', 'pause', 'token', 'pause:1',"
                    "   'timer_id', $1 || '-' || i || ':pause:1'), 'history', '[]'::json) "
                    "FROM generate_series($2::bigint, $3::bigint) i",
                    prefix,
                    first,
                    last,
                    customers_needed,
                )
                await db.execute(
                    "INSERT INTO journey.timers (timer_id, kind, due_at, journey_id,"
                    " instance_id, profile_id, token) "
                    "SELECT $1 || '-' || i || ':pause:1', 'step',"
                    " now() + interval '1 hour' + random() * interval '60 days',"
                    " 'bench-timers', $1 || '-' || i, $1 || '-p' || (i % $4), 'pause:1' "
                    "FROM generate_series($2::bigint, $3::bigint) i",
                    prefix,
                    first,
                    last,
                    customers_needed,
                )
            console.print(f"  {last + 1:,} pending timers held")
        await db.execute("VACUUM ANALYZE journey.timers, journey.instances, journey.profiles")
    finally:
        await db.close()
    return time.perf_counter() - t0


async def _drain(app: Any, dsn: str, prefix: str) -> float:
    """Firings/s of DUE_TIMERS timers due an hour ago, from the commit that makes them
    visible until the worker has fired them all (its own counter: a query over the timer
    table ten times a second would be a load of its own beside millions of rows)."""
    worker = app.state.runtime.state["timers"]
    before = worker.fired
    past = datetime.now(UTC) - timedelta(hours=1)
    visible = await seed_waiting(dsn, prefix, DUE_TIMERS, past, 0)
    deadline = visible + 600
    while worker.fired - before < DUE_TIMERS:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{DUE_TIMERS:,} due timers not fired in 600 s")
        await asyncio.sleep(0.02)
    return DUE_TIMERS / (time.perf_counter() - visible)


async def _timers(
    url: str, bootstrap: str, work: Path, held: int, console: Console
) -> dict[str, Any]:
    from services.journey.app import create_app  # noqa: PLC0415  (CLI starts fast)
    from services.journey.settings import JourneySettings  # noqa: PLC0415

    dsn, run = asyncpg_dsn(url), uuid.uuid4().hex[:6]
    await ensure_topics(bootstrap)
    (work / "journeys").mkdir()
    (work / "journeys" / "bench-timers.yaml").write_text(TIMER_JOURNEY)
    settings = JourneySettings(
        database_url=url, kafka_bootstrap_servers=bootstrap, service_name="bench-capacity",
        journeys_dir=str(ROOT / "journeys"), journey_extra_dirs=[str(work / "journeys")],
        kafka_session_timeout_ms=6_000, log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        console.print(f"timers: {DUE_TIMERS:,} due timers, nearly nothing else pending …")
        empty_rate = await _drain(app, dsn, f"{run}-a")
        await _outbox_drained(dsn)
        console.print(f"timers: seeding {held:,} pending timers with their instances …")
        seed_s = await _seed_pending(dsn, f"{run}-held", held, console)
        db = await asyncpg.connect(dsn)
        try:
            pending = int(await db.fetchval("SELECT count(*) FROM journey.timers"))
            instances = int(await db.fetchval("SELECT count(*) FROM journey.instances"))
            timer_bytes = await relation_bytes(db, "journey", ["timers"])
            instance_bytes = await relation_bytes(db, "journey", ["instances"])
        finally:
            await db.close()
        console.print(f"timers: {DUE_TIMERS:,} due timers beside {pending:,} pending …")
        held_rate = await _drain(app, dsn, f"{run}-b")
    return {
        "pending_timers_held": pending,
        "instances_held": instances,
        "pending_seed_s": round(seed_s, 1),
        "bytes_per_pending_timer": round(timer_bytes / max(pending, 1), 1),
        "bytes_per_instance": round(instance_bytes / max(instances, 1), 1),
        "due_timers": DUE_TIMERS,
        "firings_per_s_table_empty": round(empty_rate, 1),
        "firings_per_s_beside_held": round(held_rate, 1),
        "firing_rate_ratio": round(held_rate / empty_rate, 3) if empty_rate else 0.0,
    }


def run(size: str, json_path: Path | None, console: Console) -> None:
    if size not in SIZES:
        raise ValueError(f"size is one of {', '.join(SIZES)}")
    profiles_held, timers_held = SIZES[size]
    console.print(
        f"capacity benchmark: {profiles_held:,} customers, {timers_held:,} pending timers"
    )
    with embedded_stack("capacity") as (work, url, bootstrap):
        figures: dict[str, Any] = {"benchmark": "capacity", "size": size}
        figures |= asyncio.run(_profiles(url, profiles_held, console))
        figures |= asyncio.run(_timers(url, bootstrap, work, timers_held, console))
    rows = [
        ("customers held", figures["profiles_held"]),
        ("  copied from a sample through the service of", figures["sample_customers"]),
        ("database bytes per profile (row + identities, indexes)",
         figures["profile_bytes_per_profile"]),
        ("  consent history bytes per profile", figures["consent_history_bytes_per_profile"]),
        ("  timeline bytes per stored event (sample)", figures["timeline_bytes_per_event"]),
        ("lookup by identifier p50 ms", figures["lookup_by_identifier_p50_ms"]),
        ("lookup by identifier p99 ms", figures["lookup_by_identifier_p99_ms"]),
        ("pending timers held", figures["pending_timers_held"]),
        ("  seeded in, s", figures["pending_seed_s"]),
        ("database bytes per pending timer", figures["bytes_per_pending_timer"]),
        ("database bytes per waiting instance", figures["bytes_per_instance"]),
        (f"{DUE_TIMERS:,} due timers, firings/s, table nearly empty",
         figures["firings_per_s_table_empty"]),
        (f"{DUE_TIMERS:,} due timers, firings/s, beside those held",
         figures["firings_per_s_beside_held"]),
    ]  # fmt: skip
    report(console, "journeyman bench capacity", rows, figures, json_path)
