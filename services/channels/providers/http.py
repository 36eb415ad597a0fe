"""What the HTTP providers share: keep-alive connections to the provider's API, and the mapping
of HTTP outcomes onto transient and permanent failures."""

from __future__ import annotations

import asyncio

import httpx

from services.channels.providers.base import (
    AmbiguousSendError,
    PermanentSendError,
    TransientSendError,
    transient_status,
)


class Lanes:
    """`connections` clients of one keep-alive connection each, lent out one request at a time.

    Measured against one client whose pool holds the same number of connections: httpcore's
    pool spends more time assigning queued requests to connections than sending them (4x fewer
    requests per second at 64 in flight); a lane per connection has nothing to assign.
    """

    def __init__(
        self, base_url: str, connections: int, timeout: float = 10.0, **kwargs: object
    ) -> None:
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._all = [client(base_url, 1, timeout, **kwargs) for _ in range(max(1, connections))]
        for lane in self._all:
            self._idle.put_nowait(lane)

    async def post(self, url: str, **kwargs: object) -> httpx.Response:
        lane = await self._idle.get()
        try:
            return await post(lane, url, **kwargs)
        finally:
            self._idle.put_nowait(lane)

    async def get_status(self, url: str) -> str:
        return await reachable(self._all[0], url)

    async def aclose(self) -> None:
        for lane in self._all:
            await lane.aclose()


def client(
    base_url: str, connections: int, timeout: float = 10.0, **kwargs: object
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        **kwargs,  # type: ignore[arg-type]
    )


async def post(http: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    """POST; raise TransientSendError or PermanentSendError unless the answer is 2xx."""
    try:
        response = await http.post(url, **kwargs)  # type: ignore[arg-type]
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # no connection was made: the provider never saw the request
        raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
    except httpx.HTTPError as exc:
        # sent, perhaps processed, no answer (read timeout, connection dropped)
        raise AmbiguousSendError(f"{type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return response
    detail = f"HTTP {response.status_code}: {response.text[:300]}"
    if transient_status(response.status_code):
        raise TransientSendError(detail)
    raise PermanentSendError(detail)


async def reachable(http: httpx.AsyncClient, url: str = "/") -> str:
    try:
        await http.get(url, timeout=3)
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"
    return "ok"
