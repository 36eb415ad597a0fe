"""The profile benchmark's floor does the input and output it claims, on the real broker and
database: every event re-published with its customer's stored profile, the latest profile per
customer, the timeline and the profiles written; its scratch tables gone afterwards."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from journeyman.bench.common import asyncpg_dsn, produce_all
from journeyman.bench.profile_floor import measure_floor
from shared.settings import Settings
from shared.topics import EVENTS, PROFILE_EVENTS, PROFILES
from tests.helpers import TopicReader

PROFILE_A = "7b3f0c1e-0000-4000-8000-00000000000a"
PROFILE_B = "7b3f0c1e-0000-4000-8000-00000000000b"


async def _seed_profiles(dsn: str) -> None:
    """Two customers as the profile service stores them; A known by two identities."""
    db = await asyncpg.connect(dsn)
    try:
        for profile_id, traits in ((PROFILE_A, '{"first_name": "Ada"}'), (PROFILE_B, "{}")):
            await db.execute(
                "INSERT INTO profile.profiles (profile_id, version, traits, behaviour, consent, "
                "updated_at) VALUES ($1, 3, $2::jsonb, '{}', '{}', now())",
                profile_id,
                traits,
            )
        await db.executemany(
            "INSERT INTO profile.identities (identity, profile_id) VALUES ($1, $2::uuid)",
            [("anon:a1", PROFILE_A), ("user:ada", PROFILE_A), ("user:bob", PROFILE_B)],
        )
    finally:
        await db.close()


def _decoded(records: list[Any]) -> list[tuple[bytes, Any]]:
    return [(r.key or b"", orjson.loads(r.value or b"{}")) for r in records]


async def test_the_floor_publishes_each_event_with_its_stored_profile(settings: Settings) -> None:
    dsn = asyncpg_dsn(settings.database_url)
    await _seed_profiles(dsn)
    events: list[tuple[bytes, dict[str, Any]]] = [
        (b"anon:a1", {"type": "page", "messageId": "m1", "anonymousId": "a1", "name": "Home"}),
        (b"user:ada", {"type": "track", "messageId": "m2", "userId": "ada",
                       "event": "Order Completed", "timestamp": "2026-12-01T10:00:00Z"}),
        (b"user:bob", {"type": "track", "messageId": "m3", "userId": "bob",
                       "event": "Product Viewed"}),
    ]  # fmt: skip
    await produce_all(
        settings.kafka_bootstrap_servers, EVENTS, [(k, orjson.dumps(v)) for k, v in events]
    )

    async with (
        TopicReader(settings, PROFILE_EVENTS) as profile_events,
        TopicReader(settings, PROFILES) as profiles,
    ):
        measured = await measure_floor(settings, len(events))
        published = _decoded(await profile_events.read(3))
        latest = _decoded(await profiles.read(2))

    assert measured.events == 3
    by_message = {body["event"]["messageId"]: (key, body) for key, body in published}
    assert sorted(by_message) == ["m1", "m2", "m3"]
    for message_id, profile_id, (_, sent) in zip(
        ("m1", "m2", "m3"), (PROFILE_A, PROFILE_A, PROFILE_B), events, strict=True
    ):
        key, body = by_message[message_id]
        assert key == profile_id.encode()
        assert body["event"] == sent  # the record as consumed, unchanged
        assert body["profile"]["profile_id"] == profile_id
        assert body["profile"]["version"] == 3
    assert by_message["m1"][1]["profile"]["traits"] == {"first_name": "Ada"}
    assert sorted(key for key, _ in latest) == [PROFILE_A.encode(), PROFILE_B.encode()]
    db = await asyncpg.connect(dsn)
    try:
        left = await db.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'floor_%'")
    finally:
        await db.close()
    assert left == 0
