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
import re
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httptools
import httpx
import orjson

from services.channels.providers.sms import twilio_signature
from shared.web import SERVER_KEEP_ALIVE_S


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route's pattern


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    media_type: str = "application/json"


Handler = Callable[[Request], "Response | Awaitable[Response]"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(status, orjson.dumps(body))


@dataclass
class Received:
    sms: list[dict[str, Any]] = field(default_factory=list)
    push: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] = field(default_factory=list)


class Router:
    """Routes as `(method, pattern, handler)`, `{name}` matching one path segment."""

    def __init__(self, routes: list[tuple[str, str, Handler]]) -> None:
        self._routes = [
            (method, re.compile(re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"),
             handler)
            for method, pattern, handler in routes
        ]  # fmt: skip

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed = True
                continue
            return handler(
                Request(request.method, request.path, request.headers, request.body,
                        match.groupdict())
            )  # fmt: skip
        if allowed:
            return _json({"detail": "Method Not Allowed"}, 405)
        return _json({"detail": "Not Found"}, 404)


def build_app(
    account_sid: str, auth_token: str, project: str, bearer: str, *, keep_bodies: bool = True,
    status_callbacks: bool = False,
) -> tuple[Router, Received]:  # fmt: skip
    received = Received()
    ids = itertools.count(1)
    expected_basic = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    callbacks: set[asyncio.Task[None]] = set()
    failing = {"count": 0, "status": 503, "slow": 0, "slow_s": 0}

    async def late(response: Response) -> Response:
        await asyncio.sleep(failing["slow_s"])
        return response

    def answer(response: Response) -> Response | Awaitable[Response]:
        """The answer, or (`_slow`) the answer seconds late."""
        if failing["slow"] > 0:
            failing["slow"] -= 1
            return late(response)
        return response

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

    def sms(request: Request) -> Response | Awaitable[Response]:
        if request.params["sid"] != account_sid or (
            request.headers.get("authorization") != expected_basic
        ):
            return _json({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if (down := outage()) is not None:
            return down
        form = dict(parse_qsl(request.body.decode()))
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
        return answer(
            _json({"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                   "body": form["Body"], "account_sid": account_sid}, 201)
        )  # fmt: skip

    def account(request: Request) -> Response:
        return _json({"sid": request.params["sid"], "status": "active"})

    def push(request: Request) -> Response | Awaitable[Response]:
        if request.params["project"] != project or (
            request.headers.get("authorization") != f"Bearer {bearer}"
        ):
            return _json({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        if (down := outage()) is not None:
            return down
        try:
            body = orjson.loads(request.body)
            token = body["message"]["token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _json({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                    "message": "message.token is required"}}, 400)  # fmt: skip
        if token == "invalid":  # noqa: S105  (FCM's own error value)
            return _json({"error": {"code": 404, "status": "NOT_FOUND",
                                    "details": [{"errorCode": "UNREGISTERED"}]}}, 404)  # fmt: skip
        received.push.append(body["message"] if keep_bodies else {"token": token})
        return answer(_json({"name": f"projects/{project}/messages/{next(ids)}"}))

    def project_info(request: Request) -> Response:
        return _json({"project": request.params["project"]})

    def hook(request: Request) -> Response:
        received.webhook.append(
            {"name": request.params["name"], "headers": dict(request.headers),
             "body": request.body.decode("utf-8", "replace") if keep_bodies else ""}
        )  # fmt: skip
        return _json({"ok": True})

    app = Router([
        ("POST", "/2010-04-01/Accounts/{sid}/Messages.json", sms),
        ("GET", "/2010-04-01/Accounts/{sid}.json", account),
        ("POST", "/v1/projects/{project}/messages:send", push),
        ("GET", "/v1/projects/{project}", project_info),
        ("POST", "/hooks/{name}", hook),
        *_control_routes(received, failing),
    ])  # fmt: skip
    return app, received


def _control_routes(received: Received, failing: dict[str, int]) -> list[tuple[str, str, Handler]]:
    """What tests and the benchmark use: what arrived, and injected outages."""

    def listing(request: Request) -> Response:
        kind = request.params["kind"]
        if kind not in ("sms", "push", "webhook"):
            return _json({"error": "kind: one of sms, push, webhook"}, 404)
        return _json(getattr(received, kind))

    def counts(_: Request) -> Response:
        return _json({"sms": len(received.sms), "push": len(received.push),
                      "webhook": len(received.webhook)})  # fmt: skip

    def fail(request: Request) -> Response:
        body = orjson.loads(request.body or b"{}")
        failing["count"] = int(body.get("count", 1))
        failing["status"] = int(body.get("status", 503))
        return _json(failing)

    def slow(request: Request) -> Response:
        body = orjson.loads(request.body or b"{}")
        failing["slow"] = int(body.get("count", 1))
        failing["slow_s"] = int(body.get("seconds", 5))
        return _json(failing)

    def reset(_: Request) -> Response:
        received.sms.clear()
        received.push.clear()
        received.webhook.clear()
        return _json({"ok": True})

    return [
        ("GET", "/_received/{kind}", listing),
        ("GET", "/_counts", counts),
        ("POST", "/_reset", reset),
        ("POST", "/_fail", fail),
        ("POST", "/_slow", slow),
    ]


class _HttpConnection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive over httptools, answering each request in order. Most
    answers are ready at once and written from `data_received`; a late one (`_slow`) holds
    the requests behind it until it is written."""

    def __init__(self, router: Router, open_: set[_HttpConnection]) -> None:
        self._router = router
        self._open = open_
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._queue: list[tuple[Request, bool]] = []
        self._busy = False
        self._pending: asyncio.Future[None] | None = None  # a late answer being awaited
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._open.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._transport = None
        self._open.discard(self)

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(SERVER_KEEP_ALIVE_S, self._close)

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(_json({"detail": "Bad Request"}, 400), keep_alive=False)

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = httptools.parse_url(self._url).path.decode("latin-1")
        method = self._parser.get_method().decode()
        request = Request(method, path, self._headers, b"".join(self._body))
        self._queue.append((request, self._parser.should_keep_alive()))
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while self._queue and self._transport is not None:
            request, keep_alive = self._queue.pop(0)
            try:
                result = self._router.handle(request)
            except Exception:  # a bug in a handler is the client's 500, not a dead server
                result = _json({"detail": "Internal Server Error"}, 500)
            if isinstance(result, Response):
                self._write(result, keep_alive)
                continue
            self._busy = True
            self._pending = asyncio.ensure_future(self._later(result, keep_alive))
            return

    async def _later(self, pending: Awaitable[Response], keep_alive: bool) -> None:
        try:
            response = await pending
        except Exception:
            response = _json({"detail": "Internal Server Error"}, 500)
        self._busy = False
        self._write(response, keep_alive)
        self._next()

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self._transport is None:
            return
        reason = HTTPStatus(response.status).phrase
        head = (
            f"HTTP/1.1 {response.status} {reason}\r\ncontent-type: {response.media_type}\r\n"
            f"content-length: {len(response.body)}\r\n"
            + ("" if keep_alive else "connection: close\r\n") + "\r\n"
        )  # fmt: skip
        self._transport.write(head.encode() + response.body)
        if keep_alive:
            self._arm()
        else:
            self._transport.close()


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        connections: set[_HttpConnection] = set()
        server = await self._loop.create_server(
            lambda: _HttpConnection(self.app, connections), sock=self._sock
        )
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for connection in list(connections):  # kept-alive ones too: none outlives stop()
                connection.close()
            await server.wait_closed()

    def start(self) -> LocalProviders:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("local providers did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
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
