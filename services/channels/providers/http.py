"""What the HTTP providers share: keep-alive connections to the provider's API (aiohttp), and
the mapping of HTTP outcomes onto transient, permanent and ambiguous failures.

aiohttp rather than httpx: measured against the local Twilio server, httpx spent about 3 ms of
CPU per request (URL and header models, anyio cancel scopes, h11, a socket-readability probe
per reuse), five times the rest of a send; aiohttp parses in C and reuses its pool cheaply.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import aiohttp
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


class HttpApi:
    """One provider API: a session whose pool keeps up to `connections` connections open."""

    def __init__(
        self, base_url: str, connections: int, timeout: float = 10.0, *,
        auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self._base = base_url.rstrip("/")
        self._connections = max(1, connections)
        connect = min(timeout, 5.0)
        # `connect` covers the wait for a pooled connection as well as the TCP handshake: a
        # request that times out there never reached the provider. `sock_read` is the wait for
        # the answer once the request is written: past it the provider may have the message.
        self._timeout = aiohttp.ClientTimeout(
            total=connect + timeout, connect=connect, sock_connect=connect, sock_read=timeout
        )
        self._headers = dict(headers or {})
        if auth is not None:  # written out: aiohttp 3.14 deprecates its `auth=` parameter
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # made on first use, inside the running loop (aiohttp binds a session to its loop)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections, limit_per_host=self._connections,
                    keepalive_timeout=KEEPALIVE_S,
                ),
                timeout=self._timeout, headers=self._headers,
                raise_for_status=False, auto_decompress=False,
            )  # fmt: skip
        return self._session

    def url(self, path: str) -> str:
        return path if "://" in path else self._base + path

    async def post(self, path: str, **kwargs: Any) -> Answer:
        """POST; raise TransientSendError or PermanentSendError unless the answer is 2xx,
        AmbiguousSendError when the request went out but no answer came back."""
        try:
            async with self._client().post(self.url(path), **kwargs) as response:
                answer = Answer(response.status, await response.read())
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # no connection was made: the provider never saw the request
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentSendError(f"not a URL to send to: {exc}") from exc
        except aiohttp.SocketTimeoutError as exc:
            raise AmbiguousSendError(
                f"ReadTimeout: no answer within {self._timeout.sock_read}s"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            # sent, perhaps processed, no (whole) answer: connection dropped or timed out
            raise AmbiguousSendError(f"{type(exc).__name__}: {exc}") from exc
        if 200 <= answer.status < 300:
            return answer
        detail = f"HTTP {answer.status}: {answer.text[:300]}"
        if transient_status(answer.status):
            raise TransientSendError(detail)
        raise PermanentSendError(detail)

    async def get_status(self, path: str = "/") -> str:
        """`ok` when the API answers at all, else what is wrong."""
        try:
            async with self._client().get(
                self.url(path), timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        return "ok"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
