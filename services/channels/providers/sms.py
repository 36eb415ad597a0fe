"""SMS over a Twilio-compatible API: `POST /2010-04-01/Accounts/{sid}/Messages.json`,
form-encoded To/From/Body (+ StatusCallback), HTTP Basic auth with the account SID and token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus, urlencode

from services.channels.providers import http
from services.channels.providers.base import Message, PermanentSendError
from services.channels.settings import ChannelsSettings

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class TwilioSms(http.HttpProvider):
    channel = "sms"

    def __init__(self, settings: ChannelsSettings) -> None:
        super().__init__()
        self._settings = settings
        self._path = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"
        self._callback = f"{settings.channels_public_url.rstrip('/')}/t/hooks/twilio"
        # the same for every message: encoded once
        self._constant = urlencode({"From": settings.sms_from, "StatusCallback": self._callback})

    def connect(self) -> http.HttpApi:
        s = self._settings
        return http.HttpApi(
            s.twilio_base_url, s.http_connections, timeout=s.http_timeout_s,
            auth=(s.twilio_account_sid, s.twilio_auth_token.get_secret_value()),
        )  # fmt: skip

    async def send(self, message: Message) -> str:
        form = f"To={quote_plus(message.to)}&Body={quote_plus(message.parts['sms'])}&"
        response = await self._http.post(self._path, data=form + self._constant, headers=_FORM)
        sid = response.json().get("sid")
        if not isinstance(sid, str):
            raise PermanentSendError(f"SMS API answered without a sid: {response.text[:200]}")
        return sid

    async def health(self) -> str:
        return await self._http.get_status(self._path.removesuffix("/Messages.json") + ".json")


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's `X-Twilio-Signature`: HMAC-SHA1 of the URL plus each sorted key and value."""
    data = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
