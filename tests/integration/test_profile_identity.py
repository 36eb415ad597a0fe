"""Identity resolution on the real broker and database: a customer browsing on two devices
ends as one profile with the whole history, and two known profiles that prove to be one person
are merged keeping the most restrictive consent, announced by `Profile Merged` and a tombstone
on `jm.profiles`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from services.profile.app import create_app
from shared.contracts import ERASED_VERSION, PROFILE_MERGED
from shared.settings import Settings
from shared.topics import EVENTS, PROFILE_EVENTS, PROFILES
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration
OPS = {"Authorization": "Bearer ops-read"}


def _msg(run: str, seq: int, **fields: Any) -> bytes:
    body = {"type": "track", "messageId": f"{run}-{seq}", **fields}
    body.setdefault("timestamp", f"2026-05-01T10:{seq:02d}:00Z")
    return orjson.dumps(body)


async def _get(client: httpx.AsyncClient, identifier: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/profiles/{identifier}", headers=OPS)
    return response.json() if response.status_code == 200 else None


async def test_two_devices_and_two_known_profiles_become_one(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    user, phone, laptop = f"u-{run}", f"phone-{run}", f"laptop-{run}"
    email = f"ada.{run}@example.org"
    events = [
        _msg(run, 1, type="page", anonymousId=phone, name="Home"),
        _msg(run, 2, anonymousId=laptop, event="Product Viewed", properties={"product_id": "a"}),
        _msg(run, 3, type="page", anonymousId=laptop, name="Shoes"),
        # A newsletter form on the laptop: an anonymous profile with an email, refusing marketing.
        _msg(run, 4, type="identify", anonymousId=laptop,
             traits={"email": email.upper(), "consent": {"email": {"marketing": False}}}),
        # Login on the phone, granting marketing (later than the refusal).
        _msg(run, 5, type="identify", anonymousId=phone, userId=user,
             traits={"first_name": "Ada", "consent": {"email": {"marketing": True}}}),
        _msg(run, 6, userId=user, event="Order Completed", properties={"revenue": 30.0}),
        # Login on the laptop: the laptop's profile is the same person.
        _msg(run, 7, type="identify", anonymousId=laptop, userId=user,
             traits={"email": email}),
    ]  # fmt: skip
    app = create_app(settings)
    async with (
        TopicReader(settings, PROFILE_EVENTS) as profile_events,
        TopicReader(settings, PROFILES) as profiles,
        running(app) as client,
    ):
        await produce(settings, EVENTS, events, key=f"user:{user}".encode())

        async def merged() -> dict[str, Any] | None:
            p = await _get(client, f"anon:{laptop}")
            return p if p and p["user_id"] == user else None

        profile = await eventually(merged, what="the laptop's profile to join the user's")
        for identifier in (f"user:{user}", f"anon:{phone}", f"email:{email}"):
            assert (await _get(client, identifier)) == profile, identifier
        b = profile["behaviour"]
        assert b["page_views"] == 2
        assert b["product_views"] == 1
        assert b["orders_count"] == 1
        assert b["event_count"] == 7
        assert profile["traits"] == {"first_name": "Ada", "email": email}
        assert profile["consent"]["email"]["marketing"]["granted"] is False  # most restrictive

        timeline = await client.get(f"/v1/profiles/user:{user}/timeline", headers=OPS)
        names = [i["event"] or i["type"] for i in timeline.json()["items"]]
        assert len(names) == 8
        assert PROFILE_MERGED in names

        records = await profile_events.read(8)
        merges = [orjson.loads(r.value) for r in records]  # type: ignore[attr-defined]
        merges = [m for m in merges if m["event"].get("event") == PROFILE_MERGED]
        assert len(merges) == 1
        gone = merges[0]["event"]["properties"]["merged_profile_id"]
        assert merges[0]["event"]["properties"]["into_profile_id"] == profile["profile_id"]
        assert merges[0]["profile"]["profile_id"] == profile["profile_id"]
        assert gone != profile["profile_id"]

        seen: list[dict[str, Any]] = []

        async def tombstone() -> dict[str, Any] | None:
            for r in await profiles.read(1, timeout_s=5):
                body = orjson.loads(r.value)  # type: ignore[attr-defined]
                if body["profile_id"] == gone:
                    seen.append(body)
            return seen[-1] if seen and "merged_into" in seen[-1] else None

        dead = await eventually(tombstone, what="the merged-away id's tombstone")
        assert all("merged_into" not in s for s in seen[:-1])  # the tombstone comes last
        assert dead["version"] == ERASED_VERSION
        assert dead["merged_into"] == profile["profile_id"]
        # The merged-away id still answers, with the survivor.
        assert (await _get(client, gone)) == profile
        history = (await client.get(f"/v1/profiles/{gone}/consent", headers=OPS)).json()
        assert [(h["granted"], h["source"]) for h in history["history"]] == [
            (False, "identify"),
            (True, "identify"),
        ]
