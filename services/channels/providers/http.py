"""What the HTTP providers share: one keep-alive client per provider, and the mapping of HTTP
outcomes onto transient and permanent failures."""

from __future__ import annotations

import httpx

from services.channels.providers.base import (
    PermanentSendError,
    TransientSendError,
    transient_status,
)


def client(base_url: str, connections: int, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        **kwargs,  # type: ignore[arg-type]
    )


async def post(http: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    """POST; raise TransientSendError or PermanentSendError unless the answer is 2xx."""
    try:
        response = await http.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
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
