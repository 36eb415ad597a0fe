"""Contract tests of the console and the journey/channel analytics against a real HTTP server
that answers the agreed journey and channels JSON shapes (tests/browser/peers.py; the real
services are built on other branches): login, every page, the journey graph with its counts,
holdout uplift, message rates, the dead-letter count from the real broker, and the
"unavailable" panel when a service does not answer."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

import httpx
import pytest

from services.profile.app import create_app
from shared.settings import Settings
from shared.topics import DEAD_LETTER
from tests.browser.peers import JOURNEY_ID, free_port, peers_app, serving
from tests.helpers import eventually, produce, running

pytestmark = pytest.mark.integration
READ = {"Authorization": "Bearer ops-read"}
WK = ("wk-test", "")


async def _login(client: httpx.AsyncClient, key: str = "ops-read") -> httpx.Response:
    return await client.post("/console/login", data={"api_key": key, "next": "/console"})


async def test_login_guards_every_page(settings: Settings) -> None:
    async with running(create_app(settings)) as client:
        for path in ("/console", "/console/satisfaction", "/console/journeys",
                     "/console/channels", "/console/customers?q=x"):  # fmt: skip
            page = await client.get(path)
            assert page.status_code == 303
            assert page.headers["location"].startswith("/console/login?next=")
        wrong = await _login(client, "not-a-key")
        assert wrong.status_code == 401
        assert "api_key: not a valid API key" in wrong.text
        client.cookies.set("jm_console", "forged.cookie.value", path="/console")
        assert (await client.get("/console")).status_code == 303
        client.cookies.clear()
        ok = await _login(client)
        assert ok.status_code == 303
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert (await client.get("/console")).status_code == 200
        evil_login = {"api_key": "ops-read", "next": "https://evil.example"}
        evil = await client.post("/console/login", data=evil_login)
        assert evil.headers["location"] == "/console"  # no open redirect
        await client.post("/console/logout")
        client.cookies.clear()
        assert (await client.get("/console")).status_code == 303


async def test_pages_read_the_agreed_journey_and_channel_shapes(settings: Settings) -> None:
    peers = peers_app()
    async with serving(peers) as peers_url:
        config = settings.model_copy(update={"journey_url": peers_url, "channels_url": peers_url})
        await produce(settings, DEAD_LETTER, [b"broken-1", b"broken-2"])
        async with running(create_app(config)) as client:
            await _login(client)
            home = await client.get("/console")
            assert 'data-dead-letters="2"' in home.text
            assert 'data-chart="retention"' in home.text
            weekly = await client.get("/console", params={"period": "week", "active_on": "event"})
            assert "Retention and churn per week" in weekly.text
            assert "did anything in the week" in weekly.text
            bad = await client.get("/console", params={"period": "fortnight"})
            assert bad.status_code == 400
            assert "period" in bad.text

            journeys = await client.get("/console/journeys")
            assert f'data-journey="{JOURNEY_ID}"' in journeys.text
            assert "Cart recovery" in journeys.text

            journey = await client.get(f"/console/journeys/{JOURNEY_ID}")
            assert journey.status_code == 200
            # The graph: every step a node with its live count; branch edges with theirs.
            nodes = dict(re.findall(r'data-step="([^"]+)" data-entered="(\d+)"', journey.text))
            assert nodes == {"trigger": "1000", "reminder": "900", "wait-1d": "900",
                             "opened?": "750", "coupon-sms": "450", "done": "750"}  # fmt: skip
            assert 'data-label="not opened" data-value="450"' in journey.text
            # Uplift: 180/900 = 20 % against 10/100 = 10 %.
            assert 'data-uplift="0.1' in journey.text
            assert "20.0 %" in journey.text
            assert "reminder" in journey.text
            assert "34.1 %" in journey.text  # email open rate 300 / 880

            channels = await client.get("/console/channels")
            assert 'data-channel="email"' in channels.text
            assert 'data-chart="channel-series"' in channels.text
            assert re.search(
                r'data-series="sent" data-label="email" data-value="900', channels.text
            )

            unknown = await client.get("/v1/analytics/journeys/nope", headers=READ)
            assert unknown.status_code == 404  # the journey service's own 404, passed on
            assert "journey_id" in unknown.json()["detail"]
            report = (await client.get(f"/v1/analytics/journeys/{JOURNEY_ID}", headers=READ)).json()
            assert "unavailable" not in report
            assert report["uplift"]["uplift"] == pytest.approx(0.1)
            assert report["uplift"]["ci_low"] < 0.1 < report["uplift"]["ci_high"]
            assert report["goal"]["conversion_rate"] == 0.19  # 190 of 1000 entered
            [email, sms] = report["messages"]
            assert (email["delivery_rate"], email["click_rate"]) == (0.9778, 0.1364)
            assert sms["failure_rate"] == 0.0222
            funnel_csv = await client.get(f"/v1/analytics/journeys/{JOURNEY_ID}",
                                          params={"format": "csv"}, headers=READ)  # fmt: skip
            rows = list(csv.DictReader(io.StringIO(funnel_csv.text)))
            assert [r["step_id"] for r in rows][:2] == ["trigger", "reminder"]
            assert rows[1]["conversion_rate"] == "0.1"

            series = await client.get("/v1/analytics/channels", params={"format": "csv"},
                                      headers=READ)  # fmt: skip
            assert len(list(csv.DictReader(io.StringIO(series.text)))) == 5
            totals = (await client.get("/v1/analytics/channels", headers=READ)).json()["totals"]
            assert totals["email"]["open_rate"] == 0.3409
        assert {"journey_id": JOURNEY_ID, "bucket": "day"} in peers.state.calls


async def test_a_service_that_does_not_answer_is_an_unavailable_panel(settings: Settings) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    config = settings.model_copy(
        update={"journey_url": nobody, "channels_url": nobody, "segmenter_url": nobody}
    )
    async with running(create_app(config)) as client:
        await _login(client)
        journeys = await client.get("/console/journeys")
        assert journeys.status_code == 200
        assert "journey service unavailable" in journeys.text
        assert 'data-state="unavailable"' in journeys.text
        journey = await client.get(f"/console/journeys/{JOURNEY_ID}")
        assert "journey service unavailable" in journey.text
        channels = await client.get("/console/channels")
        assert "channels service unavailable" in channels.text
        # The API degrades the same way: a partial answer naming the service that failed.
        down = await client.get(f"/v1/analytics/journeys/{JOURNEY_ID}", headers=READ)
        assert down.status_code == 200
        assert "journey service unavailable" in down.json()["unavailable"]["journey"]
        assert down.json()["funnel"] == []
        quiet = (await client.get("/v1/analytics/channels", headers=READ)).json()
        assert quiet["totals"] == {}
        assert "channels" in quiet["unavailable"]
        # The KPI page needs no other service.
        assert (await client.get("/console")).status_code == 200


async def test_customer_lookup_shows_profile_consent_journeys_and_timeline(
    settings: Settings,
) -> None:
    user = f"look-{uuid.uuid4().hex[:6]}"
    async with running(create_app(settings)) as client:
        identify = {"userId": user, "traits": {"email": f"{user}@example.com",
                    "consent": {"email": {"marketing": True}}}}  # fmt: skip
        assert (await client.post("/v1/identify", json=identify, auth=WK)).status_code == 200
        order = {"userId": user, "event": "Order Completed", "properties": {"revenue": 12.5}}
        assert (await client.post("/v1/track", json=order, auth=WK)).status_code == 200

        async def landed() -> dict[str, Any] | None:
            found = await client.get(f"/v1/profiles/user:{user}", headers=READ)
            ok = found.status_code == 200 and found.json()["behaviour"].get("orders_count")
            return found.json() if ok else None

        profile = await eventually(landed, what="the customer")
        profile_journeys = {profile["profile_id"]: {"instances": [
            {"instance_id": "i-1", "journey_id": JOURNEY_ID, "version": 2, "status": "active",
             "current_step": "wait-1d", "entered_at": "2026-11-30T10:00:00+00:00",
             "history": []}]}}  # fmt: skip
        async with serving(peers_app(profile_journeys)) as peers_url:
            config = settings.model_copy(
                update={
                    "journey_url": peers_url,
                    "segmenter_url": f"http://127.0.0.1:{free_port()}",
                }
            )
            async with running(create_app(config)) as console:
                await _login(console)
                for query in (user, f"{user}@example.com", profile["profile_id"]):
                    page = await console.get("/console/customers", params={"q": query})
                    assert page.status_code == 200, page.text
                    assert profile["profile_id"] in page.text
                assert "marketing: True" in page.text
                assert "Order Completed" in page.text
                assert "wait-1d" in page.text  # the journey instance from the journey API
                assert "segmenter service unavailable" in page.text
                missing = await console.get("/console/customers", params={"q": "nobody-here"})
                assert missing.status_code == 404
                assert "No customer matches" in missing.text
