"""The webhook caller: claims queued calls, checks each target against the SSRF rules, calls
it once (no redirects followed, so a public URL cannot bounce the call inside) and stores the
outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.journey import webhooks_repository
from services.journey.ssrf import BlockedTarget, check_url, pin
from shared.clock import Clock

log = logging.getLogger(__name__)


class WebhookCaller:
    def __init__(
        self,
        db: AsyncEngine,
        clock: Clock,
        allow: Sequence[str],
        timeout_s: float,
        batch: int = 50,
    ) -> None:
        self._db, self._clock, self._allow = db, clock, list(allow)
        self._timeout, self._batch = timeout_s, batch
        self._next_sweep = clock.now()

    async def step(self) -> bool:
        now = self._clock.now()
        async with self._db.begin() as conn:
            if now >= self._next_sweep:
                await webhooks_repository.mark_stale_unknown(conn, now - timedelta(minutes=5))
                self._next_sweep = now + timedelta(minutes=1)
            calls = await webhooks_repository.claim(conn, self._batch)
        if not calls:
            return False
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            outcomes = await asyncio.gather(*(self._call(client, c) for c in calls))
        async with self._db.begin() as conn:
            for call, (status, code, error) in zip(calls, outcomes, strict=True):
                await webhooks_repository.finish(conn, call.call_id, status, code, error)
        return len(calls) >= self._batch

    async def _call(
        self, client: httpx.AsyncClient, call: Any
    ) -> tuple[str, int | None, str | None]:
        url, method = call.url, call.method
        try:
            address = await asyncio.to_thread(check_url, url, self._allow)
        except BlockedTarget as exc:
            return "failed", None, f"refused: {exc}"
        target, host, extensions = pin(url, address)
        try:
            response = await client.request(
                method,
                target,
                headers={**call.headers, **host, "Idempotency-Key": call.call_id},
                json=call.body if method != "GET" else None,
                extensions=extensions,
            )
        except httpx.HTTPError as exc:
            return "failed", None, f"{type(exc).__name__}: {exc}"
        status = "done" if response.status_code < 400 else "failed"
        return status, response.status_code, None if status == "done" else response.text[:500]
