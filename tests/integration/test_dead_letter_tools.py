"""`journeyman dlq`: dead letters can be listed with their reason and replayed, once, into the
topic they came from, where the (now fixed) consumer processes them."""

from __future__ import annotations

import uuid

import orjson
import pytest

from journeyman.dlq import DeadLetter, list_dead_letters, replay
from services.profile.app import create_app
from shared.consumer import Record, Rejected, dead_letter_record
from shared.kafka import Producer
from shared.settings import Settings
from shared.topics import EVENTS
from tests.helpers import eventually, produce, running

pytestmark = pytest.mark.integration


async def test_list_and_replay_once(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    bad = b'{"type": "track"'
    good = orjson.dumps(
        {"type": "track", "messageId": f"{run}-m", "userId": f"u-{run}", "event": "Order Completed"}
    )
    async with running(create_app(settings)) as client:
        await produce(settings, EVENTS, [bad], key=b"k")

        async def one_letter() -> list[DeadLetter]:
            return await list_dead_letters(settings)

        letters = await eventually(one_letter, what="the malformed record in the dead-letter topic")
        assert letters[0].reason.startswith("malformed JSON")
        assert letters[0].source.startswith(f"{EVENTS}[")

        # A record that failed for a reason since fixed, as an operator would find it.
        producer = Producer(settings)
        await producer.start()
        failed = Record(EVENTS, 0, 99, b"k2", good, {}, (("ce_id", f"{run}-m".encode()),), 0)
        await producer.send(
            dead_letter_record(Rejected(failed, "database was read-only"), "profile")
        )
        await producer.stop()

        replayed = await replay(settings)
        assert {r.value for r in replayed} == {bad, good}
        assert replayed[-1].original().headers == [("ce_id", f"{run}-m".encode())]

        async def profile() -> object:
            response = await client.get(
                f"/v1/profiles/user:u-{run}", headers={"Authorization": "Bearer ops-read"}
            )
            return response.json() if response.status_code == 200 else None

        await eventually(profile, what="the replayed event to build a profile")

        # The malformed record failed again: it is back with a new offset, never lost, and the
        # next replay sends only that one (offsets 0 and 1 were replayed already).
        async def failed_again() -> bool:
            return len(await list_dead_letters(settings)) == 3

        await eventually(failed_again, what="the malformed record dead-lettered again")
        again = await replay(settings)
        assert [(r.offset, r.value) for r in again] == [(2, bad)]
