"""The profile benchmark's second reference: the profile service's own input and output, done
the cheapest way, with none of its logic.

The raw baseline (issue #3's reference) consumes, upserts one row an event and produces what it
consumed. The profile service must do more input and output than that whatever its code: store
each customer's profile, append each event to the timeline, publish each event with the
customer's profile (~1 KB) and the latest profile per customer. This floor does exactly that
work on the same records, broker and database: decode (orjson), record the message ids, upsert
the batch's profiles (the snapshots the service stored), copy the timeline rows, produce with
the services' producer (records and headers built by `services.profile.publish`, as the
service builds them), commit offsets. No validation, identity resolution, fold, consent,
outbox or relay. Service → floor is what the logic costs; floor → baseline what the outputs
cost. A figure to read beside the ratio, not a target.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer

from journeyman.bench.common import Batch, Throughput, asyncpg_dsn, timed_batches
from services.profile import repository
from services.profile.behaviour import ProfileState
from services.profile.publish import PROFILE_EVENT_TYPES, fast_headers, profile_record, snapshot
from shared.codec import dumps
from shared.db import create_engine
from shared.kafka import OutRecord, Producer
from shared.settings import Settings
from shared.topics import EVENTS, PROFILE_EVENTS

_TABLES = (
    "CREATE TABLE floor_seen (message_id text PRIMARY KEY);"
    "CREATE TABLE floor_profiles (profile_id text PRIMARY KEY, snapshot jsonb NOT NULL,"
    " version int NOT NULL DEFAULT 1);"
    "CREATE TABLE floor_timeline (LIKE profile.timeline INCLUDING ALL)"
)
_DROP = "DROP TABLE IF EXISTS floor_seen, floor_profiles, floor_timeline"
_TIMELINE = ("profile_id", "timestamp", "message_id", "type", "event", "payload")
Owners = dict[bytes, tuple[ProfileState, bytes]]  # identity -> (its profile, encoded snapshot)


async def measure_floor(settings: Settings, total: int, batch: int = 2_000) -> Throughput:
    """Consume all `total` records of `jm.events` again (a group of its own) as the floor.
    Run after the service: it needs the profiles and identities the service stored."""
    owners = await _stored_owners(settings)
    db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    await db.execute(_DROP)
    await db.execute(_TABLES)
    producer = Producer(settings)
    consumer = AIOKafkaConsumer(
        EVENTS, bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bench-floor-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=batch,
    )  # fmt: skip
    await producer.start()
    await consumer.start()
    try:
        return await timed_batches(
            consumer, total, batch, lambda messages: _one_batch(db, producer, messages, owners)
        )
    finally:
        await consumer.stop()
        await producer.stop()
        await db.execute(_DROP)
        await db.close()


async def _stored_owners(settings: Settings) -> Owners:
    """Each identity's profile as the service stored it, read and encoded by the service's
    own functions, so the floor publishes exactly the snapshots the service would."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            pairs = await (await repository.pg(conn)).fetch(
                "SELECT identity, profile_id::text FROM profile.identities"
            )
            states = await repository.lock_profiles(conn, {p for _, p in pairs})
    finally:
        await engine.dispose()
    encoded = {p: dumps(snapshot(state)) for p, state in states.items()}
    return {i.encode(): (states[p], encoded[p]) for i, p in pairs}


async def _one_batch(
    db: asyncpg.Connection, producer: Producer, messages: Batch, owners: Owners
) -> None:
    now = datetime.now(UTC)
    out: list[OutRecord] = []
    profiles: dict[str, tuple[ProfileState, bytes]] = {}
    timeline, ids = [], []
    for m in messages:
        event = orjson.loads(m.value)
        state, encoded = owners[m.key]
        profile_id = state.profile_id
        profiles[profile_id] = (state, encoded)
        stamp = event.get("timestamp")
        when = datetime.fromisoformat(stamp) if stamp else now
        ids.append(event["messageId"])
        timeline.append(
            (profile_id, when, event["messageId"], event["type"], event.get("event"),
             m.value.decode())
        )  # fmt: skip
        headers = fast_headers(
            event["messageId"], PROFILE_EVENT_TYPES[event["type"]], when, profile_id, None
        )
        body = b'{"event":' + m.value + b',"profile":' + encoded + b"}"
        out.append(OutRecord(PROFILE_EVENTS, body, profile_id.encode(), headers))
    out += [profile_record(state, encoded) for state, encoded in profiles.values()]
    async with db.transaction():
        await db.execute(
            "INSERT INTO floor_seen SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", ids
        )
        await db.execute(
            "INSERT INTO floor_profiles (profile_id, snapshot) "
            "SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (profile_id) DO UPDATE "
            "SET snapshot = excluded.snapshot, version = floor_profiles.version + 1",
            list(profiles),
            [encoded.decode() for _, encoded in profiles.values()],
        )
        await db.copy_records_to_table("floor_timeline", records=timeline, columns=_TIMELINE)
    await producer.send_batch(out)
