"""What the HTTP providers share: keep-alive connections to the provider's API, and the
mapping of HTTP outcomes onto transient, permanent and ambiguous failures.

HTTP/1.1 written by hand on an asyncio protocol, the answer parsed by httptools (llhttp, the
parser of Node.js, in C). Measured against the local Twilio server on this machine: httpx
spent about 3 ms of CPU per request, aiohttp about 0.5 ms (URL and header models, a request
and a response object, payload writers, timers), this client about 0.14 ms. A provider API
needs little of a general client: POST a small body to a few fixed URLs, read a small answer.
Each request goes out on a connection of the pool or a new one (TLS for https), answers are
read whole (Content-Length, chunked, or up to the close).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

from services.channels.providers.base import (
    AmbiguousSendError,
    PermanentSendError,
    TransientSendError,
    transient_status,
)

#: Idle pooled connections are dropped after this: below the idle timeout of the servers and
#: load balancers providers sit behind (60 s is common; ours keep 75 s), so a send never goes
#: out on a connection the server is closing, an answer lost we would have to call `unknown`.
KEEPALIVE_S = 30.0


@dataclass(frozen=True)
class Answer:
    """A provider's 2xx answer, read whole (they are small JSON documents)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _split(url: str) -> tuple[_Origin, str]:
    """Origin and request target of an absolute http(s) URL; ValueError if it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in target for c in " \r\n"):
        raise ValueError(f"{url!r}: not a request target")
    return _Origin(parts.scheme, parts.hostname, port), target


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._status = 0
        self._delimited = False  # the answer's length is known (Content-Length or chunked)
        self._reusable = True
        self._waiter: asyncio.Future[Answer] | None = None

    @property
    def usable(self) -> bool:
        return self._reusable and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if self._status and not self._delimited:  # an answer that ends with the connection
            waiter.set_result(Answer(self._status, b"".join(self._body)))
        else:
            waiter.set_exception(ConnectionResetError(f"connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"invalid HTTP answer: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self._status, b"".join(self._body))
        self._reusable = self._reusable and self._parser.should_keep_alive()
        self._body, self._status, self._delimited = [], 0, False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)
        else:  # an answer nobody asked for: the connection is out of step
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self._reusable = False
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, within_s: float) -> Answer:
        """Write the request, wait for its answer (TimeoutError past `within_s`: one timer,
        cheaper per request than `asyncio.timeout`'s cancellation)."""
        assert self.transport is not None
        assert self._waiter is None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(within_s, self._fail, TimeoutError())
        try:
            self.transport.write(request)
            return await waiter
        except BaseException:
            self.close()  # cut off mid-exchange (timeout, cancel): never reused
            raise
        finally:
            timer.cancel()


class HttpApi:
    """One provider API: a pool of up to `connections` connections kept open."""

    def __init__(
        self, base_url: str, connections: int, timeout: float = 10.0, *,
        auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self._base = base_url.rstrip("/")
        self._slots = asyncio.Semaphore(max(1, connections))
        # `connect` covers the wait for a pooled connection as well as the TCP (and TLS)
        # handshake: a request that times out there never reached the provider. `read` is the
        # wait for the answer once the request is written: past it the provider may have it.
        self._connect_timeout = min(timeout, 5.0)
        self._read_timeout = timeout
        self._headers = dict(headers or {})
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._targets: dict[str, tuple[_Origin, str]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def url(self, path: str) -> str:
        return path if "://" in path else self._base + path

    def _target(self, url: str) -> tuple[_Origin, str]:
        found = self._targets.get(url)
        if found is None:
            found = _split(url)
            if len(self._targets) < 1_000:  # the APIs' few fixed URLs, not every webhook's
                self._targets[url] = found
        return found

    async def _connection(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable and loop.time() - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        context = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        _, conn = await asyncio.wait_for(
            loop.create_connection(_Connection, origin.host, origin.port, ssl=context),
            self._connect_timeout,
        )
        return conn

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
        *, read_timeout: float | None = None,
    ) -> Answer:  # fmt: skip
        """One exchange, whatever the status. TransientSendError when the request never went
        out, AmbiguousSendError when it did but no whole answer came back."""
        if self._closed:
            raise TransientSendError("the provider's client is closed")
        try:
            origin, target = self._target(self.url(path))
        except ValueError as exc:
            raise PermanentSendError(f"not a URL to send to: {exc}") from exc
        fields = {"Host": origin.authority, **self._headers, **(headers or {})}
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        slots = self._slots
        if slots.locked():  # the wait for a pooled connection counts as connecting
            try:
                async with asyncio.timeout(self._connect_timeout):  # no task, unlike wait_for
                    await slots.acquire()
            except TimeoutError as exc:
                raise TransientSendError(
                    f"ConnectionTimeoutError: no connection free within {self._connect_timeout}s"
                ) from exc
        else:
            await slots.acquire()
        try:
            try:
                conn = await self._connection(origin)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                # no connection was made: the provider never saw the request
                raise TransientSendError(
                    f"cannot connect to {origin.authority}: {type(exc).__name__}: {exc}"
                ) from exc
            timeout = self._read_timeout if read_timeout is None else read_timeout
            try:
                answer = await conn.exchange(request, timeout)
            except TimeoutError as exc:
                raise AmbiguousSendError(f"ReadTimeout: no answer within {timeout}s") from exc
            except OSError as exc:
                # sent, perhaps processed, no (whole) answer: connection dropped
                raise AmbiguousSendError(f"{type(exc).__name__}: {exc}") from exc
            if conn.usable and not self._closed:
                conn.idle_since = asyncio.get_running_loop().time()
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()
            return answer
        finally:
            slots.release()

    async def post(
        self, path: str, *, data: bytes | str, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """POST; raise TransientSendError or PermanentSendError unless the answer is 2xx,
        AmbiguousSendError when the request went out but no answer came back."""
        body = data.encode() if isinstance(data, str) else data
        answer = await self.request("POST", path, body, headers)
        if 200 <= answer.status < 300:
            return answer
        detail = f"HTTP {answer.status}: {answer.text[:300]}"
        if transient_status(answer.status):
            raise TransientSendError(detail)
        raise PermanentSendError(detail)

    async def get_status(self, path: str = "/") -> str:
        """`ok` when the API answers at all, else what is wrong."""
        try:
            await self.request("GET", path, read_timeout=3.0)
        except (TransientSendError, AmbiguousSendError, PermanentSendError) as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        return "ok"

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                with contextlib.suppress(Exception):
                    conn.close()
        self._idle.clear()


class HttpProvider:
    """What every HTTP provider shares: its pooled client, made by `connect` at start (inside
    the running loop) and closed at close."""

    def __init__(self) -> None:
        self._client: HttpApi | None = None

    def connect(self) -> HttpApi:
        raise NotImplementedError

    async def start(self) -> None:
        self._client = self.connect()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def _http(self) -> HttpApi:
        assert self._client is not None, "start() the provider first"
        return self._client
