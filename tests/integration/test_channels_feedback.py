"""Through Kafka end to end in one service: dispatches for every channel reach the local SMTP,
Twilio-style, FCM-style and webhook servers; opens, clicks, provider reports and the one-click
unsubscribe come back as lifecycle events on `jm.events`; the unsubscribe stops later sends;
the ops API reports it all."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from services.channels.app import create_app
from services.channels.providers import webhook
from services.channels.providers.sms import twilio_signature
from shared.settings import Settings
from shared.topics import DISPATCH, EVENTS
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
READ = {"Authorization": "Bearer ops-read"}
WRITE = {"Authorization": "Bearer ops-write"}


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def test_every_channel_and_the_feedback_loop(
    settings: Settings, local: Local, database_url: str
) -> None:
    cfg = channels_settings(settings, local, channels_public_url="http://channels.test")
    consent = {**granted("email", "marketing"), **granted("sms", "marketing"),
               **granted("push", "marketing"), **granted("webhook", "marketing")}  # fmt: skip
    customer = snapshot(
        "c1", email="ana@example.com", phone="+33612345678", push_tokens=["old", "tok-new"],
        webhook_url=f"{local.providers.url}/hooks/partner", first_name="Ana", language="fr",
        consent=consent,
    )  # fmt: skip
    records = [
        dispatch(f"d-{ch}", "c1", channel=ch, template="cart-reminder", profile=customer)
        for ch in ("email", "sms", "push", "webhook")
    ]
    records.append(b"{not json")  # dead-lettered, the rest goes on
    app = create_app(cfg)
    async with running(app) as client, TopicReader(settings, EVENTS) as events:
        await produce(settings, DISPATCH, records, key=b"c1")

        async def all_sent() -> dict[str, Any] | None:
            found = await attempts(database_url)
            done = len(found) == 4 and all(a["status"] == "sent" for a in found.values())
            return found if done else None

        await eventually(all_sent, 60, "four sends")
        sms = local.providers.received.sms
        assert [(m["To"], m["Body"].split(",")[0]) for m in sms] == [("+33612345678", "Ana")]
        assert "votre panier" in sms[0]["Body"]  # the customer's language
        [push] = local.providers.received.push
        assert push["token"] == "tok-new"
        assert push["notification"]["body"] == "Ana, finish your order before it sells out."
        assert push["data"] == {"dispatch_id": "d-push", "journey_id": "j", "step_id": "s1"}
        hook = local.providers.received.webhook[0]
        assert json.loads(hook["body"])["dispatch_id"] == "d-webhook"
        signature = hook["headers"]["x-journeyman-signature"]
        assert webhook.verify("dev-only-webhook-secret", hook["body"].encode(), signature,
                              time.time())  # fmt: skip
        [mail] = local.emails()
        assert mail["Subject"] == "Vous avez oublié quelque chose dans votre panier, Ana"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = mail["List-Unsubscribe"].strip("<>")
        html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        pixel = re.search(r'src="(http://channels\.test/t/o/[^"]+)"', html)
        click = re.search(r'href="(http://channels\.test/t/r/[^"]+)"', html)
        assert pixel
        assert click

        # opens and clicks (twice: counted, published once)
        for _ in range(2):
            opened = await client.get(_path(pixel[1]))
            assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")
            clicked = await client.get(_path(click[1]))
            assert (clicked.status_code, clicked.headers["location"]) == (
                302, "https://shop.example/cart",
            )  # fmt: skip
        forged = await client.get(_path(click[1])[:-3] + "abc")
        assert forged.status_code == 400

        # Twilio status callback, signed as Twilio signs it; a wrong signature is refused
        sid = (await attempts(database_url))["d-sms"]["provider_message_id"]
        params = {"MessageSid": sid, "MessageStatus": "delivered"}
        url = "http://channels.test/t/hooks/twilio"
        good = {"X-Twilio-Signature": twilio_signature("dev-token", url, params)}
        assert (await client.post("/t/hooks/twilio", data=params, headers=good)).status_code == 200
        bad = {"X-Twilio-Signature": "nope"}
        assert (await client.post("/t/hooks/twilio", data=params, headers=bad)).status_code == 401

        # one-click unsubscribe: a GET changes nothing, the POST does; later sends are refused
        assert "Unsubscribe" in (await client.get(_path(unsubscribe))).text
        done = await client.post(_path(unsubscribe), content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200
        await produce(settings, DISPATCH, [dispatch("d-email-2", "c1", template="cart-reminder")])

        async def second_decided() -> dict[str, Any] | None:
            found = (await attempts(database_url)).get("d-email-2")
            return found if found and found["status"] != "sending" else None

        second = await eventually(second_decided, 30, "the send after the unsubscribe")
        assert (second["status"], second["reason"]) == ("suppressed", "no consent")

        # a hard bounce reported by a provider suppresses the address
        body = json.dumps({"dispatch_id": "d-email", "status": "bounced", "reason": "550"})
        sign = webhook.sign("dev-only-webhook-secret", body.encode(), int(time.time()))
        headers = {webhook.SIGNATURE_HEADER: sign, "content-type": "application/json"}
        assert (await client.post("/t/hooks/status", content=body, headers=headers)).is_success
        unsigned = await client.post("/t/hooks/status", content=body)
        assert unsigned.status_code == 401

        received = [json.loads(r.value) for r in await events.read(10, timeout_s=30)]  # type: ignore[attr-defined]
        names = Counter(m.get("event") or m["type"] for m in received)
        assert names == {
            "Message Sent": 4, "Message Opened": 1, "Message Clicked": 1,
            "Message Delivered": 1, "identify": 1, "Message Unsubscribed": 1,
            "Message Bounced": 1,
        }  # fmt: skip
        identify = next(m for m in received if m["type"] == "identify")
        assert identify["userId"] == "u-c1"
        assert identify["traits"] == {"consent": {"email": {"marketing": False}}}

        await _ops_api(client)


async def _ops_api(client: httpx.AsyncClient) -> None:
    sends = (await client.get("/v1/profiles/c1/sends", headers=READ)).json()
    second = next(s for s in sends if s["dispatch_id"] == "d-email-2")
    assert [d["decision"] for d in second["decisions"]] == ["suppressed"]
    first = next(s for s in sends if s["dispatch_id"] == "d-email")
    assert [d["decision"] for d in first["decisions"]] == ["send", "sent"]
    stats = (await client.get("/v1/messages/stats", headers=READ)).json()
    email = stats["totals"]["email"]
    assert {k: email[k] for k in ("sent", "opened", "clicked", "unsubscribed", "bounced",
                                  "suppressed")} == dict.fromkeys(
        ("sent", "opened", "clicked", "unsubscribed", "bounced", "suppressed"), 1
    )  # fmt: skip
    assert stats["totals"]["sms"]["delivered"] == 1
    assert {s["channel"] for s in stats["by_step"]} == {"email", "sms", "push", "webhook"}
    assert (await client.get("/v1/messages/stats")).status_code == 401

    suppressions = (await client.get("/v1/suppressions", headers=READ)).json()
    assert [(s["channel"], s["address"]) for s in suppressions] == [("email", "ana@example.com")]
    gone = await client.delete("/v1/suppressions/email/ana@example.com", headers=WRITE)
    assert gone.status_code == 200
    again = await client.delete("/v1/suppressions/email/ana@example.com", headers=WRITE)
    assert again.status_code == 404

    templates = (await client.get("/v1/templates", headers=READ)).json()
    names = {t["name"]: t["channels"] for t in templates["templates"]}
    assert names["cart-reminder"] == ["email", "sms", "push", "webhook"]
    preview = await client.get(
        "/v1/templates/cart-reminder/preview", params={"profile_id": "c1", "channel": "sms"},
        headers=READ,
    )  # fmt: skip
    assert preview.json()["parts"]["sms"].startswith("Ana, votre panier")
    missing = await client.get(
        "/v1/templates/cart-reminder/preview", params={"profile_id": "nobody"}, headers=READ
    )
    assert missing.status_code == 404
    checked = await client.post(
        "/v1/templates/validate", json={"parts": {"sms.liquid": "Hi {{ custmer.x }}"}},
        headers=READ,
    )  # fmt: skip
    assert checked.json()["valid"] is False
    assert "custmer" in checked.json()["errors"][0]["error"]
    health = (await client.get("/v1/providers", headers=READ)).json()
    assert health == {"email": "ok", "sms": "ok", "push": "ok", "webhook": "ok"}
