"""The channels' own projection of `jm.profiles`: a record's snapshot is stored as its bytes
(validated, not re-encoded), the newest version wins even when an older one arrives late, a
bad record is dead-lettered, and a dispatch that carries no snapshot is sent with it."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest

from journeyman.bench.common import asyncpg_dsn
from services.channels.app import create_app
from shared.codec import dumps
from shared.settings import Settings
from shared.topics import DEAD_LETTER, DISPATCH, PROFILES
from tests.channels_support import (
    Local,
    attempts,
    channels_settings,
    dispatch,
    granted,
    snapshot,
)
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration


async def _contact(database_url: str, profile_id: str) -> dict[str, Any] | None:
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await db.fetchrow(
            "SELECT version, snapshot::text AS s FROM channels.contacts WHERE profile_id = $1",
            profile_id,
        )
    finally:
        await db.close()
    return None if row is None else {"version": row["version"], **orjson.loads(row["s"])}


async def test_the_projection_keeps_the_newest_snapshot_and_sends_with_it(
    settings: Settings, local: Local, database_url: str
) -> None:
    consent = granted("email", "marketing")
    first = snapshot("p1", 1, email="old@example.com", first_name="Ana", consent=consent)
    second = snapshot("p1", 2, email="ana@example.com", first_name="Ana", consent=consent)
    newest = dumps(second.model_dump(mode="json"))
    app = create_app(channels_settings(settings, local))
    async with running(app), TopicReader(settings, DEAD_LETTER) as dead:
        await produce(settings, PROFILES, [newest], key=b"p1")

        async def stored(version: int) -> dict[str, Any] | None:
            found = await _contact(database_url, "p1")
            return found if found and found["version"] == version else None

        contact = await eventually(lambda: stored(2), 30, "version 2 projected")
        assert contact["traits"]["email"] == "ana@example.com"
        assert contact["user_id"] == "u-p1"  # the whole snapshot, as the record carried it
        late = dumps(first.model_dump(mode="json"))
        await produce(settings, PROFILES, [late, b'{"profile_id": "p2"}'], key=b"p1")
        rejected: list[Any] = await dead.read(1)
        assert rejected[0].value == b'{"profile_id": "p2"}'  # no version, no updated_at
        assert (await _contact(database_url, "p1") or {})["version"] == 2  # late v1 lost
        await produce(settings, DISPATCH, [dispatch("d-1", "p1", template="welcome")], key=b"p1")

        async def sent() -> dict[str, Any] | None:
            found = (await attempts(database_url)).get("d-1")
            return found if found and found["status"] == "sent" else None

        await eventually(sent, 30, "the dispatch sent")
    [email] = local.emails()
    assert email["To"] == "ana@example.com"  # the projection's newest address
