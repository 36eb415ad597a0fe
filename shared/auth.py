"""API keys for ops endpoints (scoped read/write) and Segment-style write keys for ingestion.

Keys are compared in constant time. A missing or wrong key is a 401 whose message says how to
send one; a read key on a write endpoint is a 403.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Iterable

from fastapi import HTTPException, Request, status

from shared.settings import Scope, Settings


def _matches(candidate: str, keys: Iterable[str]) -> bool:
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def require_scope(settings: Settings, scope: Scope) -> Callable[[Request], None]:
    """A FastAPI dependency admitting ops keys with `scope` (write keys may also read)."""
    read_keys = [k.key.get_secret_value() for k in settings.api_keys]
    write_keys = [k.key.get_secret_value() for k in settings.api_keys if k.scope == "write"]

    def check(request: Request) -> None:
        key = _bearer(request)
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not _matches(key, read_keys):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid API key", {"WWW-Authenticate": "Bearer"}
            )
        if scope == "write" and not _matches(key, write_keys):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key may only read")

    return check


def require_write_key(settings: Settings) -> Callable[[Request], str]:
    """Segment's scheme: HTTP Basic with the write key as user name and an empty password."""
    keys = [k.get_secret_value() for k in settings.write_keys]

    def check(request: Request) -> str:
        header = request.headers.get("authorization", "")
        key = ""
        if header.lower().startswith("basic "):
            try:
                key = base64.b64decode(header[6:]).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing write key: send HTTP Basic auth with the write key as user name",
                headers={"WWW-Authenticate": 'Basic realm="journeyman"'},
            )
        if not _matches(key, keys):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid write key",
                headers={"WWW-Authenticate": 'Basic realm="journeyman"'},
            )
        return key

    return check
