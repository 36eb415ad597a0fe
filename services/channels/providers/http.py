"""What the HTTP providers share: keep-alive connections to the provider's API, and the
mapping of HTTP outcomes onto transient, permanent and ambiguous failures.

The client is pyreqwest (reqwest and hyper, in Rust, on a Tokio runtime of its own; rustls for
https, trusting the system's roots and `SSL_CERT_FILE`). Measured against the local Twilio
server on this machine: httpx spent about 3 ms of CPU per request, aiohttp about 0.5 ms,
pyreqwest about 0.17 ms; per SMS, composing included, ~0.22 ms against ~0.13-0.16 ms for the
HTTP/1.1 client this module used to write by hand on httptools, the price of not keeping one.

Where a request fails decides whether a retry is safe, and pyreqwest's exception classes do
not say it: `ConnectError` is raised for a refused connection and for one reset after the
request went out alike, `ConnectTimeoutError` for a connect that timed out and for an answer
that came too late alike. What does say it is the cause chain in `details["causes"]`: hyper's
client reports a failure to connect (TCP, TLS, the connect timeout) as `client error
(Connect)`, one after the request was handed to the connection as `client error
(SendRequest)`. So a failure is transient only with that positive evidence (or a wait for a
free connection past the pool timeout, which pyreqwest answers before sending anything);
everything else is ambiguous. Should a new version word it otherwise, refused connections
would turn `unknown` (the tests on real sockets say so) but nothing would be sent twice.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder

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

#: hyper-util's words for a failure while connecting (DNS, TCP, TLS, connect timeout): the
#: request was never handed to a connection.
_NOT_CONNECTED = "client error (Connect)"


@dataclass(frozen=True)
class Answer:
    """A provider's answer, read whole (they are small JSON documents)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _causes(exc: rq.PyreqwestError) -> list[str]:
    details = getattr(exc, "details", None) or {}
    return [cause["message"] for cause in details.get("causes") or ()]


def _failure(exc: rq.PyreqwestError, read_timeout: float) -> Exception:
    """The send failure `exc` means: transient only when the request surely never went out."""
    causes = _causes(exc)
    detail = "; ".join(causes[1:] or causes) or exc.message
    if isinstance(exc, rq.PoolTimeoutError):  # pyreqwest's wait for a slot: nothing sent yet
        return TransientSendError(f"ConnectionTimeoutError: no connection free: {detail}")
    if isinstance(exc, rq.BuilderError):
        return PermanentSendError(f"not a URL to send to: {detail}")
    if isinstance(exc, (rq.ConnectError, rq.ConnectTimeoutError)) and _NOT_CONNECTED in causes:
        return TransientSendError(f"cannot connect: {type(exc).__name__}: {detail}")
    if isinstance(exc, rq.RequestTimeoutError):  # sent, perhaps processed, no answer in time
        return AmbiguousSendError(f"ReadTimeout: no answer within {read_timeout}s: {detail}")
    # sent, perhaps processed, no (whole) answer: connection dropped, answer cut short
    return AmbiguousSendError(f"{type(exc).__name__}: {detail}")


class HttpApi:
    """One provider API: up to `connections` requests in flight, on connections kept open."""

    def __init__(
        self, base_url: str, connections: int, timeout: float = 10.0, *,
        auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self._base = base_url.rstrip("/")
        # `connect` covers the wait for a free connection as well as the TCP (and TLS)
        # handshake: a request that times out there never reached the provider. `read` is the
        # wait for the answer once the request is written: past it the provider may have it.
        self._connect_timeout = min(timeout, 5.0)
        self._read_timeout = timeout
        fields = dict(headers or {})
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            fields["Authorization"] = f"Basic {pair}"
        slots = max(1, connections)
        connect = timedelta(seconds=self._connect_timeout)
        self._client: Client = (
            ClientBuilder()
            .http1_only()
            .max_connections(slots)  # requests in flight; the wait for one is `pool_timeout`
            .pool_timeout(connect)
            .pool_max_idle_per_host(slots)
            .pool_idle_timeout(timedelta(seconds=KEEPALIVE_S))
            .connect_timeout(connect)
            # reqwest starts the wait for the answer's head with the request, before connecting:
            # past `connect + timeout` no answer came within `timeout` of the request going out
            # (and `connect`, shorter, always ends first: a connect that times out is one)
            .read_timeout(timedelta(seconds=self._connect_timeout + timeout))
            # and the whole exchange, beyond any wait for a slot and connect so that it never
            # ends either: a server trickling bytes cannot hold a request
            .timeout(timedelta(seconds=2 * self._connect_timeout + timeout))
            .tcp_nodelay(True)
            .follow_redirects(False)  # a 3xx is the provider's answer (permanent)
            .error_for_status(False)  # statuses are mapped below
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .default_headers(fields)
            .build()
        )
        self._closed = False

    def url(self, path: str) -> str:
        return path if "://" in path else self._base + path

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
        *, read_timeout: float | None = None,
    ) -> Answer:  # fmt: skip
        """One exchange, whatever the status. TransientSendError when the request never went
        out, AmbiguousSendError when it did but no whole answer came back."""
        if self._closed:
            raise TransientSendError("the provider's client is closed")
        url = self.url(path)
        if not url[:8].lower().startswith(("http://", "https://")):
            raise PermanentSendError(f"not a URL to send to: {url!r}: not an http(s) URL")
        try:
            builder = self._client.request(method, url)
        except ValueError as exc:  # unparsable (BuilderError is a ValueError too)
            raise PermanentSendError(f"not a URL to send to: {url!r}: {exc}") from exc
        if headers:
            builder = builder.headers(dict(headers))
        if body:
            builder = builder.body_bytes(body)
        if read_timeout is not None:
            whole = 2 * self._connect_timeout + read_timeout
            builder = builder.timeout(timedelta(seconds=whole))
        timeout = self._read_timeout if read_timeout is None else read_timeout
        try:
            response = await builder.build().send()
            data = await response.bytes()
        except rq.PyreqwestError as exc:
            raise _failure(exc, timeout) from exc
        return Answer(response.status, data.to_bytes())

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
        if not self._closed:
            self._closed = True
            await self._client.close()


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
