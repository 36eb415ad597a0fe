"""The console in headless Chromium (Debian's package, driven by Playwright), on real data:
the demo shop's customers and months of their history go in through the profile service's
ingestion API, and all four services run over real HTTP on the real database and broker: the
journey service runs the shipped journeys (the thank-you journey emails every order), channels
sends to a local SMTP inbox, and a customer answers a survey in the browser. The journey and
channels pages are checked against those services' own stats APIs.

Each page is loaded after logging in with an API key, its charts are checked to carry the
numbers the measurement API computes, and a screenshot is written to
tests/artifacts/screenshots/. Without /usr/bin/chromium this test fails; it never skips.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from journeyman.shop import customers, traffic
from services.channels.app import create_app as channels_app
from services.journey.app import create_app as journey_app
from services.profile.app import create_app as profile_app
from services.segmenter.app import create_app as segmenter_app
from shared.settings import Settings
from shared.signing import LinkSigner
from tests.browser.peers import serving
from tests.browser.seed import history
from tests.channels_support import channels_settings, local_providers
from tests.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "artifacts" / "screenshots"
THANK_YOU = "post-purchase-thank-you"  # one email per order: the journey the pages are read on
READ = {"Authorization": "Bearer ops-read"}


@dataclass
class Console:
    url: str
    api: httpx.AsyncClient
    segmenter_url: str
    journey_url: str
    channels_url: str
    user_ids: list[str]
    buyer_ids: list[str]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    found = CHROMIUM.exists()  # noqa: ASYNC240  (one stat before the browser starts)
    assert found, "Debian's chromium is missing: apt-get install -y chromium (make test does)"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def _seed(api: httpx.AsyncClient, messages: list[dict[str, Any]]) -> None:
    for i in range(0, len(messages), 400):
        answer = await api.post("/v1/batch", json={"batch": messages[i : i + 400]},
                                auth=("wk-test", ""))  # fmt: skip
        assert answer.status_code == 200, answer.text


@asynccontextmanager
async def console(settings: Settings, tmp_path: Path) -> AsyncIterator[Console]:
    """The four services over real HTTP, the demo shop's data and its history sent in, waited
    for until it has all landed and every order's thank-you was decided."""
    async with AsyncExitStack() as stack:
        local = stack.enter_context(local_providers(tmp_path))
        base = settings.model_copy(update={"journeys_dir": str(ROOT / "journeys")})
        segmenter_url = await stack.enter_async_context(serving(segmenter_app(base)))
        journey_url = await stack.enter_async_context(serving(journey_app(base)))
        channels = channels_settings(base, local, cap_exempt_journeys=[THANK_YOU])
        channels_url = await stack.enter_async_context(serving(channels_app(channels)))
        config = base.model_copy(update={
            "journey_url": journey_url, "channels_url": channels_url,
            "segmenter_url": segmenter_url,
        })  # fmt: skip
        url = await stack.enter_async_context(serving(profile_app(config)))
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        rng, run = random.Random(42), uuid.uuid4().hex[:8]
        shoppers = customers(30, rng)
        now = datetime.now(UTC)
        messages = list(traffic(shoppers, rng, run)) + history(shoppers, rng, run, now)
        await _seed(api, messages)
        orders = sum(m.get("event") == "Order Completed" for m in messages)
        answers = sum(m.get("event") == "Survey Responded" for m in messages)

        async def landed() -> bool:
            kpis = (await api.get("/v1/analytics/kpis", headers=READ)).json()["kpis"]
            sat = (await api.get("/v1/analytics/satisfaction", headers=READ)).json()["groups"]
            total = sum(sat[0][s]["responses"] for s in ("nps", "csat", "ces")) if sat else 0
            async with httpx.AsyncClient(base_url=channels_url, headers=READ) as peer:
                stats = (await peer.get("/v1/messages/stats",
                                        params={"journey_id": THANK_YOU})).json()  # fmt: skip
            email = stats["totals"].get("email", {})
            decided = email.get("sent", 0) + email.get("suppressed", 0)
            return bool(kpis["orders"] == orders and total == answers and decided == orders)

        await eventually(landed, timeout_s=120, what="the shop's history and its emails")
        yield Console(url, api, segmenter_url, journey_url, channels_url,
                      [c.user_id for c in shoppers],
                      [c.user_id for c in shoppers if c.buys])  # fmt: skip


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _points(page: Page, chart: str, kind: str = "circle.point") -> list[float]:
    values = await page.locator(f'svg[data-chart="{chart}"] {kind}').evaluate_all(
        "els => els.map(e => parseFloat(e.dataset.value))"
    )
    return [float(v) for v in values]


async def test_console_pages_show_the_shops_real_numbers(
    settings: Settings, tmp_path: Path
) -> None:
    async with console(settings, tmp_path) as running, chromium() as browser:
        api = running.api
        kpis = (await api.get("/v1/analytics/kpis", headers=READ)).json()
        page = await browser.new_page(viewport={"width": 1280, "height": 900})

        # Login.
        await page.goto(f"{running.url}/console")
        assert "/console/login" in page.url
        await page.fill("#api_key", "wrong")
        await page.click("button[type=submit]")
        assert "not a valid API key" in await page.inner_text("body")
        await page.fill("#api_key", "ops-read")
        await _shot(page, "00-login")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{running.url}/console")

        # KPIs: tiles equal the API, the retention chart has a point per month.
        orders_tile = await page.inner_text('[data-kpi="Orders"] .value')
        assert orders_tile == str(kpis["kpis"]["orders"])
        assert kpis["kpis"]["orders"] > 20
        basket = await page.inner_text('[data-kpi="Average basket"] .value')
        assert float(basket) == pytest.approx(kpis["kpis"]["average_basket"])
        retention = [
            p["retention_rate"] for p in kpis["retention"] if p["retention_rate"] is not None
        ]
        drawn = await _points(page, "retention", 'circle.point[data-series="retention %"]')
        assert len(retention) >= 2
        assert sorted(round(v, 2) for v in drawn) == sorted(round(100 * r, 2) for r in retention)
        assert await page.locator('[data-kpi="Dead letters"] .value').inner_text() == "0"
        assert await page.locator('[data-panel="clv"]').count() == 1
        await _shot(page, "01-kpis")

        # Satisfaction: one customer answers in the browser first, through the survey link.
        someone = (await api.get(f"/v1/profiles/user:{running.user_ids[0]}", headers=READ)).json()
        token = LinkSigner(settings.link_secret.get_secret_value(), "survey").sign({
            "profile_id": someone["profile_id"], "survey": "nps", "journey_id": "post-purchase",
            "step_id": "ask-nps", "dispatch_id": f"browser-{uuid.uuid4().hex[:6]}",
        })  # fmt: skip
        before = (await api.get("/v1/analytics/satisfaction", headers=READ)).json()
        survey = await browser.new_page()
        await survey.goto(f"{running.url}/v1/surveys/{token}")
        await survey.check('input[name=score][value="10"]')
        await survey.fill("#comment", "Lovely coffee")
        await _shot(survey, "02-survey")
        await survey.click("button[type=submit]")
        assert "Thank you" in await survey.inner_text("h1")

        async def answered() -> dict[str, Any] | None:
            now = (await api.get("/v1/analytics/satisfaction", headers=READ)).json()
            grew = now["groups"][0]["nps"]["responses"] > before["groups"][0]["nps"]["responses"]
            return now if grew else None

        overall = (await eventually(answered, what="the browser's answer"))["groups"][0]
        await page.goto(f"{running.url}/console/satisfaction")
        nps_tile = await page.inner_text('[data-score="nps"] .value')
        assert float(nps_tile) == pytest.approx(overall["nps"]["score"])
        assert f"({overall['nps']['responses']} answers)" in await page.inner_text(
            '[data-score="nps"]'
        )
        monthly = (await api.get("/v1/analytics/satisfaction", params={"group_by": "month"},
                                 headers=READ)).json()["groups"]  # fmt: skip
        nps_points = await _points(page, "satisfaction", 'circle.point[data-series="NPS"]')
        assert sorted(nps_points) == sorted(g["nps"]["score"] for g in monthly if g["nps"]["score"]
                                            is not None)  # fmt: skip
        assert len(monthly) >= 3
        bars = await _points(page, "responses", "rect.bar")
        assert sum(bars) == sum(g[s]["responses"] for g in monthly for s in ("nps", "csat", "ces"))
        await _shot(page, "03-satisfaction")

        # Journeys: the list, and a journey's graph with its live counts (the journey service's).
        async with httpx.AsyncClient(base_url=running.journey_url, headers=READ) as peer:
            journey = (await peer.get(f"/v1/journeys/{THANK_YOU}/stats")).json()
        async with httpx.AsyncClient(base_url=running.channels_url, headers=READ) as peer:
            messages = (await peer.get("/v1/messages/stats")).json()
        await page.goto(f"{running.url}/console/journeys")
        await page.click(f"text={THANK_YOU}")
        await page.wait_for_selector("svg.journey-graph")
        entered = await page.locator("svg.journey-graph g.node").evaluate_all(
            "els => els.map(e => [e.dataset.step, e.dataset.entered])"
        )
        expected = {s["step_id"]: str(s["entered"]) for s in journey["steps"]}
        assert dict(entered)["thank-you-email"] == expected["thank-you-email"]
        assert int(expected["thank-you-email"]) == kpis["kpis"]["orders"]
        assert "Uplift" in await page.inner_text('[data-panel="uplift"]')
        await _shot(page, "04-journey")

        # Channels: the bars carry the channels service's own counts.
        await page.goto(f"{running.url}/console/channels")
        totals = await _points(page, "channel-totals", "rect.bar")
        sent = messages["totals"]["email"]["sent"]
        assert sent > 0
        assert sent in totals
        assert len(await _points(page, "channel-series")) >= 1
        await _shot(page, "05-channels")

        # Customer lookup: profile, consent, segments (the real segmenter), timeline.
        buyer = (await api.get(f"/v1/profiles/user:{running.buyer_ids[0]}", headers=READ)).json()

        async def segmented() -> list[str] | None:
            async with httpx.AsyncClient(base_url=running.segmenter_url, headers=READ) as seg:
                found = (await seg.get(f"/v1/profiles/{buyer['profile_id']}/segments")).json()
            ids = [s["segment_id"] for s in found["segments"]]
            return ids if "customers" in ids else None

        segment_ids = await eventually(segmented, what="the segmenter to place the buyer")
        await page.goto(f"{running.url}/console/customers")
        await page.fill("input[name=q]", running.buyer_ids[0])
        await page.click("main form button[type=submit]")
        await page.wait_for_selector('[data-panel="timeline"]')
        body = await page.inner_text("main")
        assert buyer["profile_id"] in body
        assert "Order Completed" in body
        assert await page.locator('[data-panel="consent"]').count() == 1
        shown = await page.inner_text('[data-panel="segments"]')
        assert all(segment in shown for segment in segment_ids)
        await _shot(page, "06-customer")
