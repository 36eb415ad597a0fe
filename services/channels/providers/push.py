"""Push over an FCM HTTP v1-compatible API: `POST /v1/projects/{project}/messages:send` with
a bearer token and `{"message": {"token", "notification": {"title", "body"}, "data"}}`."""

from __future__ import annotations

import orjson

from services.channels.providers import http
from services.channels.providers.base import Message, PermanentSendError
from services.channels.settings import ChannelsSettings


class FcmPush(http.HttpProvider):
    channel = "push"

    def __init__(self, settings: ChannelsSettings) -> None:
        super().__init__()
        self._settings = settings
        self._path = f"/v1/projects/{settings.fcm_project}/messages:send"

    def connect(self) -> http.HttpApi:
        s = self._settings
        return http.HttpApi(
            s.fcm_base_url, s.http_connections, timeout=s.http_timeout_s,
            headers={"Authorization": f"Bearer {s.fcm_token.get_secret_value()}"},
        )  # fmt: skip

    async def send(self, message: Message) -> str:
        body = {
            "message": {
                "token": message.to,
                "notification": {"title": message.parts["push_title"],
                                 "body": message.parts["push_body"]},
                "data": {"dispatch_id": message.dispatch_id, **message.data},
            }
        }  # fmt: skip
        response = await self._http.post(
            self._path, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        name = response.json().get("name")
        if not isinstance(name, str):
            raise PermanentSendError(f"push API answered without a name: {response.text[:200]}")
        return name

    async def health(self) -> str:
        return await self._http.get_status(f"/v1/projects/{self._settings.fcm_project}")
