"""The ops API and the customer pages on the real broker and database: consent by API, by an
unsubscribe link (RFC 8058 one-click) and by the preference page, each going out at once; the
timeline by range, type and stable cursor; search by trait; GDPR export and erase; bad input
answered with a 4xx naming the problem, or dead-lettered."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from services.profile.app import create_app
from services.profile.links import PREFERENCES, UNSUBSCRIBE, link
from shared.contracts import ERASED_VERSION, PROFILE_ERASED
from shared.settings import Settings
from shared.topics import DEAD_LETTER, EVENTS, PROFILE_EVENTS, PROFILES
from tests.helpers import TopicReader, eventually, produce, running

pytestmark = pytest.mark.integration
READ = {"Authorization": "Bearer ops-read"}
WRITE = {"Authorization": "Bearer ops-write"}
WK = ("wk-test", "")


def _msg(run: str, seq: int, **fields: Any) -> dict[str, Any]:
    body = {"type": "track", "messageId": f"{run}-{seq}", **fields}
    body.setdefault("timestamp", f"2026-05-01T10:00:{seq:02d}Z")
    return body


async def _profile(client: httpx.AsyncClient, identifier: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/profiles/{identifier}", headers=READ)
    return response.json() if response.status_code == 200 else None


async def _events_of(reader: TopicReader, name: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        for r in await reader.read(1):
            body = orjson.loads(r.value)  # type: ignore[attr-defined]
            if body.get("event", {}).get("event") == name:
                found.append(body)
    return found


async def test_consent_timeline_search_export_and_erase(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    user, email = f"gdpr-{run}", f"zoe.{run}@example.com"
    app = create_app(settings)
    async with TopicReader(settings, PROFILE_EVENTS) as out, running(app) as client:
        batch = [
            _msg(run, 1, type="identify", userId=user,
                 traits={"email": email, "city": f"Lyon-{run}", "birthday": "1991-04-02",
                         "consent": {"email": {"marketing": True, "newsletter": True}}}),
            *[_msg(run, i, userId=user, event="Product Viewed",
                   properties={"product_id": f"p{i}"}) for i in range(2, 9)],
            _msg(run, 9, type="page", userId=user, name="Home"),
        ]  # fmt: skip
        assert (await client.post("/v1/batch", json={"batch": batch}, auth=WK)).status_code == 200

        async def landed() -> dict[str, Any] | None:
            p = await _profile(client, f"email:{email.upper()}")
            return p if p and p["behaviour"].get("page_views") == 1 else None

        profile = await eventually(landed, what="the batch to land")
        pid = profile["profile_id"]

        # Timeline: pages of 3 by cursor, newest first, no gaps or repeats; filters.
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/v1/profiles/{pid}/timeline", params=params,
                                     headers=READ)).json()  # fmt: skip
            seen += [i["message_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"{run}-{i}" for i in range(9, 0, -1)]
        ranged = await client.get(
            f"/v1/profiles/user:{user}/timeline", headers=READ,
            params={"since": "2026-05-01T10:00:03", "until": "2026-05-01T10:00:06Z",
                    "event": "Product Viewed"},
        )  # fmt: skip
        assert [i["message_id"] for i in ranged.json()["items"]] == [
            f"{run}-5", f"{run}-4", f"{run}-3"
        ]  # fmt: skip
        pages = await client.get(f"/v1/profiles/{pid}/timeline?type=page", headers=READ)
        assert [i["message_id"] for i in pages.json()["items"]] == [f"{run}-9"]
        bad_cursor = await client.get(f"/v1/profiles/{pid}/timeline?cursor=xx", headers=READ)
        assert bad_cursor.status_code == 400

        # Search by trait.
        found = await client.get(f"/v1/profiles?trait.city=Lyon-{run}", headers=READ)
        assert [p["profile_id"] for p in found.json()["items"]] == [pid]

        # Consent by API: a read key may not; the change goes out at once.
        body = {"consent": {"email": {"marketing": False}}, "source": "support-ticket-42"}
        denied = await client.put(f"/v1/profiles/{pid}/consent", json=body, headers=READ)
        assert denied.status_code == 403
        changed = await client.put(f"/v1/profiles/{pid}/consent", json=body, headers=WRITE)
        assert changed.status_code == 200, changed.text
        assert changed.json()["version"] == profile["version"] + 1
        told = (await _events_of(out, "Consent Changed"))[0]
        assert told["profile"]["consent"]["email"]["marketing"]["granted"] is False
        assert told["event"]["properties"]["source"] == "support-ticket-42"
        wrong = await client.put(
            f"/v1/profiles/{pid}/consent", json={"consent": {"email": {"x": "yes"}}},
            headers=WRITE,
        )  # fmt: skip
        assert wrong.status_code == 400
        assert "consent.email.x" in wrong.json()["detail"]

        # One-click unsubscribe (RFC 8058) from the newsletter; GET changes nothing.
        url = link(settings, UNSUBSCRIBE, pid, "email", "newsletter").split("/v1/", 1)[1]
        assert "Unsubscribe" in (await client.get(f"/v1/{url}")).text
        one_click = await client.post(
            f"/v1/{url}", content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert one_click.status_code == 200
        assert "unsubscribed" in one_click.text
        assert (await client.post(f"/v1/{url[:-3]}abc")).status_code == 400  # altered link

        # Preference page: the grid shows current answers; saving grants SMS marketing only.
        prefs = link(settings, PREFERENCES, pid).split("/v1/", 1)[1]
        page_html = (await client.get(f"/v1/{prefs}")).text
        assert 'name="email.marketing"' in page_html
        saved = await client.post(
            f"/v1/{prefs}", content=b"sms.marketing=on",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert "Saved" in saved.text
        consent = (await client.get(f"/v1/profiles/{pid}/consent", headers=READ)).json()
        assert consent["consent"]["sms"]["marketing"]["granted"] is True
        assert consent["consent"]["email"]["newsletter"]["granted"] is False
        sources = [h["source"] for h in consent["history"]]
        assert sources[:3] == ["identify", "identify", "support-ticket-42"]
        assert {"unsubscribe-link", "preference-page"} <= set(sources)

        # GDPR export: everything held.
        export = (await client.get(f"/v1/profiles/user:{user}/export", headers=READ)).json()
        assert export["profile"]["traits"]["email"] == email
        assert {i["identity"] for i in export["identities"]} == {f"user:{user}", f"email:{email}"}
        assert len(export["timeline"]) == 9 + 3  # events and consent changes
        assert len(export["consent_history"]) == len(consent["history"])

        # GDPR erase: nothing of the customer left in any profile table.
        async with TopicReader(settings, PROFILES) as snapshots:
            erased = await client.delete(f"/v1/profiles/email:{email}", headers=WRITE)
            assert erased.json() == {"erased": True, "profile_ids": [pid]}
            told = (await _events_of(out, PROFILE_ERASED))[0]
            assert told["event"]["properties"] == {"profile_id": pid}
            last = orjson.loads((await snapshots.read(1))[-1].value)  # type: ignore[attr-defined]
            assert (last["profile_id"], last["version"]) == (pid, ERASED_VERSION)
        assert await _profile(client, pid) is None
        assert (await client.get(f"/v1/{prefs}")).status_code == 404
        engine = app.state.runtime.engine

        async def nothing_left() -> bool:
            async with engine.connect() as conn:
                tables = (await conn.execute(text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'profile' AND table_name <> 'alembic_version'"
                ))).scalars().all()  # fmt: skip
                for table in tables:
                    hits = await conn.scalar(text(
                        f"SELECT count(*) FROM profile.{table} t "  # noqa: S608
                        "WHERE t::text LIKE :a OR t::text LIKE :b OR t::text LIKE :c"
                    ), {"a": f"%{user}%", "b": f"%{run}@%", "c": f"%{pid}%"})  # fmt: skip
                    if hits:
                        return False
            return True

        await eventually(nothing_left, what="no trace of the customer in any profile table")
        # A replay of the old events changes nothing; a new event starts a fresh profile.
        await produce(settings, EVENTS, [orjson.dumps(m) for m in batch], key=user.encode())
        fresh = _msg(run, 50, userId=user, event="Product Viewed")
        await produce(settings, EVENTS, [orjson.dumps(fresh)], key=user.encode())
        again = await eventually(lambda: _profile(client, f"user:{user}"), what="fresh profile")
        assert again["profile_id"] != pid
        assert again["behaviour"]["event_count"] == 1
        assert again["traits"] == {}


async def test_bad_input_is_a_clear_4xx_or_a_dead_letter(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    async with TopicReader(settings, DEAD_LETTER) as dlq, running(create_app(settings)) as client:

        async def post(path: str, **kwargs: Any) -> httpx.Response:
            return await client.post(path, auth=WK, **kwargs)

        huge = {"userId": run, "event": "X", "properties": {"blob": "x" * 40_000}}
        response = await post("/v1/track", json=huge)
        assert response.status_code == 413
        assert "32 KB" in response.json()["detail"]
        response = await post("/v1/batch", json={"batch": [_msg(run, 1, userId=run)] * 501})
        assert response.status_code == 400
        assert response.json()["detail"] == "batch: at most 500 messages"
        many = {"batch": [_msg(run, i, userId=run, event="X") for i in range(400)]}
        many["batch"][0]["properties"] = {"pad": "y" * 600_000}
        assert (await post("/v1/batch", json=many)).status_code == 413
        response = await post("/v1/track", json={"userId": run, "event": "X", "timestamp": future})
        assert response.status_code == 400
        assert response.json()["detail"] == "timestamp: more than a day in the future"
        response = await post("/v1/identify", json={"userId": run, "traits": ["a"]})
        assert response.status_code == 400
        assert response.json()["detail"].startswith("traits:")
        response = await post("/v1/identify", json={"userId": run, "traits": {"birthday": "soon"}})
        assert response.json()["detail"].startswith("traits.birthday:")
        assert (await post("/v1/track", json=[1, 2])).status_code == 400
        nul = await post("/v1/track", json={"userId": run, "event": "X\u0000"})
        assert nul.json()["detail"] == "body: NUL characters (\\u0000) are not accepted"
        assert (await client.get("/v1/profiles/a%00b", headers=READ)).status_code == 400
        assert (await post("/v1/track", content=b"\x00\xff")).status_code == 400
        assert (await client.get("/v1/profiles/user:nobody", headers=READ)).status_code == 404
        assert (await client.get("/v1/profiles", headers=READ)).status_code == 400
        packed = gzip.compress(orjson.dumps({"batch": [_msg(run, 2, userId=run, event="Zip")]}))
        zipped = await post("/v1/batch", content=packed, headers={"content-encoding": "gzip"})
        assert zipped.status_code == 200, zipped.text

        ahead = orjson.dumps(_msg(run, 3, userId=run, event="X", timestamp=future))
        nul_record = orjson.dumps(_msg(run, 4, userId=run, event="X\u0000"))
        await produce(settings, EVENTS, [ahead, nul_record], key=run.encode())
        dead = [r for r in await dlq.read(2) if r.key == run.encode()]  # type: ignore[attr-defined]
        reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]  # type: ignore[attr-defined]
        assert "more than a day in the future" in reasons[0]
        assert "NUL" in reasons[1]
        zipped_profile = await eventually(lambda: _profile(client, f"user:{run}"), what="zip")
        assert zipped_profile["behaviour"]["event_count"] == 1
