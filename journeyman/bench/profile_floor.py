"""The profile benchmark's second reference: the profile service's own input and output, done
the cheapest way, with none of its logic.

The raw baseline (issue #3's reference) consumes, upserts one row an event and produces what it
consumed. The profile service must do more input and output than that whatever its code: store
each customer's profile, append each event to the timeline, publish each event with the
customer's profile (~1 KB) and the latest profile per customer. This floor does exactly that
work on the same records, broker and database: decode (orjson), record the message ids, upsert
the batch's profiles (the snapshots the service stored), copy the timeline rows, produce with
the services' producer, commit offsets. No validation, identity resolution, fold, consent,
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
from shared.kafka import OutRecord, Producer
from shared.settings import Settings
from shared.topics import EVENTS, PROFILE_EVENTS, PROFILES

# The service's stored profiles, as `services.profile.publish.snapshot` shapes them.
_SNAPSHOTS = (
    "SELECT i.identity, p.profile_id::text, json_build_object('profile_id', p.profile_id, "
    "'version', p.version, 'user_id', p.user_id, 'anonymous_id', p.anonymous_id, 'traits', "
    "p.traits, 'behaviour', p.behaviour, 'consent', p.consent, 'updated_at', p.updated_at)::text "
    "FROM profile.identities i JOIN profile.profiles p ON p.profile_id = i.profile_id::text"
)
_TABLES = (
    "CREATE TABLE floor_seen (message_id text PRIMARY KEY);"
    "CREATE TABLE floor_profiles (profile_id text PRIMARY KEY, snapshot jsonb NOT NULL,"
    " version int NOT NULL DEFAULT 1);"
    "CREATE TABLE floor_timeline (LIKE profile.timeline INCLUDING ALL)"
)
_DROP = "DROP TABLE IF EXISTS floor_seen, floor_profiles, floor_timeline"
_TIMELINE = ("profile_id", "timestamp", "message_id", "type", "event", "payload")
# DESIGN.md's CloudEvents binary-mode attributes: the constant ones shared by every record
_CONSTANT = [("ce_specversion", b"1.0"), ("ce_source", b"journeyman/profile"),
             ("content-type", b"application/json")]  # fmt: skip
_EVENT_TYPE = ("ce_type", b"journeyman.profile-event")
_PROFILE_TYPE = ("ce_type", b"journeyman.profile")
_TRACE = b"00-" + b"0" * 31 + b"1-" + b"0" * 15 + b"1-01"


async def measure_floor(settings: Settings, total: int, batch: int = 2_000) -> Throughput:
    """Consume all `total` records of `jm.events` again (a group of its own) as the floor.
    Run after the service: it needs the profiles and identities the service stored."""
    db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    owners: Owners = {
        identity.encode(): (profile_id, body.encode())
        for identity, profile_id, body in await db.fetch(_SNAPSHOTS)
    }
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


Owners = dict[bytes, tuple[str, bytes]]  # identity -> (profile id, its snapshot)


async def _one_batch(
    db: asyncpg.Connection, producer: Producer, messages: Batch, owners: Owners
) -> None:
    now = datetime.now(UTC)
    out: list[OutRecord] = []
    profiles: dict[str, bytes] = {}
    timeline, ids = [], []
    for m in messages:
        event = orjson.loads(m.value)
        profile_id, snapshot = owners[m.key]
        profiles[profile_id] = snapshot
        stamp = event.get("timestamp")
        when = datetime.fromisoformat(stamp) if stamp else now
        ids.append(event["messageId"])
        timeline.append(
            (profile_id, when, event["messageId"], event["type"], event.get("event"),
             m.value.decode())
        )  # fmt: skip
        body = b'{"event":' + m.value + b',"profile":' + snapshot + b"}"
        key = profile_id.encode()
        headers = [
            *_CONSTANT, _EVENT_TYPE, ("ce_id", event["messageId"].encode()),
            ("ce_time", str(stamp).encode()), ("traceparent", _TRACE), ("ce_subject", key),
        ]  # fmt: skip
        out.append(OutRecord(PROFILE_EVENTS, body, key, headers))
    out += [
        OutRecord(PROFILES, body, p.encode(), [*_CONSTANT, _PROFILE_TYPE, ("ce_id", p.encode())])
        for p, body in profiles.items()
    ]
    async with db.transaction():
        await db.execute(
            "INSERT INTO floor_seen SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", ids
        )
        await db.execute(
            "INSERT INTO floor_profiles (profile_id, snapshot) "
            "SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (profile_id) DO UPDATE "
            "SET snapshot = excluded.snapshot, version = floor_profiles.version + 1",
            list(profiles),
            [body.decode() for body in profiles.values()],
        )
        await db.copy_records_to_table("floor_timeline", records=timeline, columns=_TIMELINE)
    await producer.send_batch(out)
