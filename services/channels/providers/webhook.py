"""The webhook channel: a JSON POST to the customer's (or partner's) URL, signed with
HMAC-SHA256 over `<timestamp>.<body>` in `X-Journeyman-Signature: t=<ts>,v1=<hex>` (the scheme
Stripe uses), so the receiver can check origin and freshness."""

from __future__ import annotations

import hashlib
import hmac
import time

from services.channels.providers import http
from services.channels.providers.base import Message
from services.channels.settings import ChannelsSettings

SIGNATURE_HEADER = "X-Journeyman-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance_s: int = 300) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance_s` old."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookProvider(http.HttpProvider):
    channel = "webhook"

    def __init__(self, settings: ChannelsSettings) -> None:
        super().__init__()
        self._settings = settings

    def connect(self) -> http.HttpApi:
        return http.HttpApi(
            "", self._settings.http_connections, timeout=self._settings.http_timeout_s
        )

    async def send(self, message: Message) -> str:
        body = message.parts["webhook"].encode()
        signature = sign(self._settings.webhook_secret.get_secret_value(), body, int(time.time()))
        headers = {
            "Content-Type": "application/json", SIGNATURE_HEADER: signature,
            "X-Journeyman-Dispatch-Id": message.dispatch_id,
        }  # fmt: skip
        await self._http.post(message.to, data=body, headers=headers)
        return message.dispatch_id

    async def health(self) -> str:
        return "ok"  # each message has its own URL: nothing to probe in advance
