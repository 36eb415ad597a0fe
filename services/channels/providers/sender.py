"""What wraps every provider alike: a token bucket per provider (aiolimiter), retries with
exponential backoff on transient errors, permanent errors recorded at once.

The retry loop is written out: tenacity's retrying object, built per message, cost about as
much CPU as the rest of a send's bookkeeping, for a policy of four lines."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from services.channels.providers.base import (
    AmbiguousSendError,
    Message,
    PermanentSendError,
    Provider,
    TransientSendError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    status: str  # sent | failed | unknown (may have been accepted: never retried blindly)
    tries: int
    provider_id: str | None = None
    reason: str | None = None


class RateLimitedProvider:
    """A provider behind its token bucket and retry policy."""

    def __init__(
        self, provider: Provider, rate_per_s: float, tries: int = 4, backoff_s: float = 0.5
    ) -> None:
        self.provider = provider
        self.channel = provider.channel
        # a bucket of a tenth of a second's tokens: bursts stay short, the rate holds
        self._bucket = AsyncLimiter(max(1.0, rate_per_s / 10), 0.1)
        self._tries = tries
        self._backoff = backoff_s

    def backoff(self, failed_tries: int) -> float:
        """Seconds before the next try: doubling from `backoff_s`, at most 30."""
        return float(min(30.0, self._backoff * 2 ** (failed_tries - 1)))

    async def send(self, message: Message) -> SendResult:
        tries = 0
        while True:
            tries += 1
            try:
                async with self._bucket:
                    provider_id = await self.provider.send(message)
                return SendResult("sent", tries, provider_id)
            except PermanentSendError as exc:
                return SendResult("failed", tries, reason=f"permanent: {exc}")
            except AmbiguousSendError as exc:
                log.warning("provider may have it", extra={"dispatch_id": message.dispatch_id})
                return SendResult(
                    "unknown", tries, reason=f"no answer after handing it over: {exc}"
                )
            except TransientSendError as exc:
                if tries >= self._tries:
                    log.warning("gave up on a message", extra={"dispatch_id": message.dispatch_id})
                    return SendResult("failed", tries, reason=f"gave up after {tries} tries: {exc}")
                await asyncio.sleep(self.backoff(tries))
