"""Local stand-ins for the SMS, push and webhook providers: one small HTTP server speaking the
Twilio Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`, Basic auth, form
To/From/Body), the FCM HTTP v1 API (`POST /v1/projects/{project}/messages:send`, bearer token)
and accepting webhooks (`POST /hooks/{name}`), keeping everything it receives. Used by the
embedded stack, the tests and the benchmark, as the SMTP inbox is for email.

Like the real services it refuses what they refuse: a wrong key is 401, a missing field 400
(Twilio code 21604), Twilio's magic invalid number `+15005550001` 400 (code 21211), an FCM
token `invalid` 404 `UNREGISTERED`. With `status_callbacks`, every accepted SMS is followed by
a signed `delivered` status callback to its `StatusCallback` URL, as Twilio does.

`GET /_received/{kind}` (sms, push, webhook) lists what arrived; `GET /_counts` counts it;
`POST /_fail {"count": n, "status": 503}` makes the next n sends fail (outages in tests);
`POST /_slow {"count": n, "seconds": s}` makes the next n accepted sends answer s seconds late
(a provider that took the message but whose answer came after the client gave up).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.channels.providers.sms import twilio_signature
from shared.web import SERVER_KEEP_ALIVE_S


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


@dataclass
class Received:
    sms: list[dict[str, Any]] = field(default_factory=list)
    push: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] = field(default_factory=list)


def build_app(
    account_sid: str, auth_token: str, project: str, bearer: str, *, keep_bodies: bool = True,
    status_callbacks: bool = False,
) -> tuple[Starlette, Received]:  # fmt: skip
    received = Received()
    ids = itertools.count(1)
    expected_basic = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    callbacks: set[asyncio.Task[None]] = set()
    failing = {"count": 0, "status": 503, "slow": 0, "slow_s": 0}

    async def lag() -> None:
        if failing["slow"] > 0:
            failing["slow"] -= 1
            await asyncio.sleep(failing["slow_s"])

    def outage() -> Response | None:
        if failing["count"] <= 0:
            return None
        failing["count"] -= 1
        return _json({"code": 20500, "message": "injected outage"}, failing["status"])

    client: list[httpx.AsyncClient] = []

    async def callback(url: str, sid: str, to: str) -> None:
        if not client:
            client.append(httpx.AsyncClient(timeout=5))
        params = {"MessageSid": sid, "MessageStatus": "delivered", "To": to,
                  "AccountSid": account_sid}  # fmt: skip
        headers = {"X-Twilio-Signature": twilio_signature(auth_token, url, params)}
        with contextlib.suppress(httpx.HTTPError):
            await client[0].post(url, data=params, headers=headers)

    async def sms(request: Request) -> Response:
        if request.path_params["sid"] != account_sid or (
            request.headers.get("authorization") != expected_basic
        ):
            return _json({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if (down := outage()) is not None:
            return down
        form = dict(parse_qsl((await request.body()).decode()))
        for name in ("To", "From", "Body"):
            if not form.get(name):
                return _json({"code": 21604, "message": f"A '{name}' is required",
                              "status": 400}, 400)  # fmt: skip
        if form["To"] == "+15005550001":
            return _json({"code": 21211, "message": "Invalid 'To' Phone Number",
                          "status": 400}, 400)  # fmt: skip
        sid = f"SM{next(ids):032x}"
        received.sms.append(form if keep_bodies else {"To": form["To"]})
        if status_callbacks and form.get("StatusCallback"):
            task = asyncio.create_task(callback(form["StatusCallback"], sid, form["To"]))
            callbacks.add(task)
            task.add_done_callback(callbacks.discard)
        await lag()
        return _json({"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                      "body": form["Body"], "account_sid": account_sid}, 201)  # fmt: skip

    async def account(request: Request) -> Response:
        return _json({"sid": request.path_params["sid"], "status": "active"})

    async def push(request: Request) -> Response:
        if request.path_params["project"] != project or (
            request.headers.get("authorization") != f"Bearer {bearer}"
        ):
            return _json({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        if (down := outage()) is not None:
            return down
        try:
            body = orjson.loads(await request.body())
            token = body["message"]["token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                    "message": "message.token is required"}}, 400)  # fmt: skip
        if token == "invalid":  # noqa: S105  (FCM's own error value)
            return _json({"error": {"code": 404, "status": "NOT_FOUND",
                                    "details": [{"errorCode": "UNREGISTERED"}]}}, 404)  # fmt: skip
        received.push.append(body["message"] if keep_bodies else {"token": token})
        await lag()
        return _json({"name": f"projects/{project}/messages/{next(ids)}"})

    async def project_info(request: Request) -> Response:
        return _json({"project": request.path_params["project"]})

    async def hook(request: Request) -> Response:
        body = await request.body()
        received.webhook.append(
            {"name": request.path_params["name"], "headers": dict(request.headers),
             "body": body.decode("utf-8", "replace") if keep_bodies else ""}
        )  # fmt: skip
        return _json({"ok": True})

    app = Starlette(routes=[
        Route("/2010-04-01/Accounts/{sid}/Messages.json", sms, methods=["POST"]),
        Route("/2010-04-01/Accounts/{sid}.json", account, methods=["GET"]),
        Route("/v1/projects/{project}/messages:send", push, methods=["POST"]),
        Route("/v1/projects/{project}", project_info, methods=["GET"]),
        Route("/hooks/{name}", hook, methods=["POST"]),
        *_control_routes(received, failing),
    ])  # fmt: skip
    return app, received


def _control_routes(received: Received, failing: dict[str, int]) -> list[Route]:
    """What tests and the benchmark use: what arrived, and injected outages."""

    async def listing(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in ("sms", "push", "webhook"):
            return _json({"error": "kind: one of sms, push, webhook"}, 404)
        return _json(getattr(received, kind))

    async def counts(_: Request) -> Response:
        return _json({"sms": len(received.sms), "push": len(received.push),
                      "webhook": len(received.webhook)})  # fmt: skip

    async def fail(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        failing["count"] = int(body.get("count", 1))
        failing["status"] = int(body.get("status", 503))
        return _json(failing)

    async def slow(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        failing["slow"] = int(body.get("count", 1))
        failing["slow_s"] = int(body.get("seconds", 5))
        return _json(failing)

    async def reset(_: Request) -> Response:
        received.sms.clear()
        received.push.clear()
        received.webhook.clear()
        return _json({"ok": True})

    return [
        Route("/_received/{kind}", listing, methods=["GET"]),
        Route("/_counts", counts, methods=["GET"]),
        Route("/_reset", reset, methods=["POST"]),
        Route("/_fail", fail, methods=["POST"]),
        Route("/_slow", slow, methods=["POST"]),
    ]


@dataclass(frozen=True)
class Credentials:
    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: str = "dev-token"  # noqa: S105  (the local stand-in's fixed key)
    project: str = "journeyman-local"
    bearer: str = "dev-token"


class LocalProviders:
    """The server in a background thread of this process (tests); `serve_forever` runs it as
    a process of its own (the stack, the benchmark)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, credentials: Credentials = Credentials(),
        *, status_callbacks: bool = False, keep_bodies: bool = True,
    ) -> None:  # fmt: skip
        self.app, self.received = build_app(
            credentials.account_sid, credentials.auth_token, credentials.project,
            credentials.bearer, keep_bodies=keep_bodies, status_callbacks=status_callbacks,
        )  # fmt: skip
        self.credentials = credentials
        self._sock = socket.create_server((host, port))
        # accepted connections inherit it: without it a response sent as headers + body waits
        # for the client's delayed ACK (40 ms) between the two
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off",
            timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalProviders:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("local providers did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> LocalProviders:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve_forever(
    host: str = "127.0.0.1", port: int = 8010, *, status_callbacks: bool = True,
    keep_bodies: bool = True,
) -> None:  # fmt: skip
    """Run until SIGINT or SIGTERM (`journeyman up` runs it as its own process)."""
    providers = LocalProviders(
        host, port, status_callbacks=status_callbacks, keep_bodies=keep_bodies
    ).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        providers.stop()
