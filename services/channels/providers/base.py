"""The provider interface and what a provider is handed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class TransientSendError(Exception):
    """Worth retrying: the provider is away, timing out or throttling."""


class PermanentSendError(Exception):
    """Never worth retrying: the address or message is refused."""


class AmbiguousSendError(Exception):
    """The message may have reached the provider: the connection broke or timed out after it
    was handed over, before the answer. Providers offer no idempotency key, so a retry could
    send it twice: the attempt's fate is unknown, as after a crash."""


@dataclass(frozen=True)
class Message:
    """One rendered message to one address."""

    dispatch_id: str
    channel: str
    to: str
    parts: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)  # push data / webhook metadata


class Provider(Protocol):
    channel: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Message) -> str:
        """Send; return the provider's message id."""
        ...

    async def health(self) -> str:
        """`ok` or what is wrong."""
        ...


def transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: throttling, timeouts, server errors."""
    return status in (408, 425, 429) or status >= 500
