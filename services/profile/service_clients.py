"""What the measurement API and the console read from the other services, through their HTTP
APIs only (never their tables, never their code): journey stats and a customer's journeys,
message stats, a customer's segments; and the dead-letter count from the topic's offsets.

A call that fails (service down, timeout, error status, not the agreed JSON) raises
`ServiceUnavailable` naming the service, so a page can show that panel as unavailable and
carry on with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.settings import Settings
from shared.topics import DEAD_LETTER

TIMEOUT_S = 5.0


class ServiceUnavailable(RuntimeError):
    """`status` is the HTTP status the service answered, None when it did not answer."""

    def __init__(self, service: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{service} service unavailable: {reason}")
        self.service = service
        self.reason = reason
        self.status = status


def _key(settings: Settings) -> str | None:
    if settings.services_api_key is not None:
        return settings.services_api_key.get_secret_value()
    return settings.api_keys[0].key.get_secret_value() if settings.api_keys else None


class ServiceClients:
    """One pooled HTTP client for the journey, channels and segmenter services."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        key = _key(settings)
        self._http = httpx.AsyncClient(
            timeout=TIMEOUT_S,
            headers={"Authorization": f"Bearer {key}"} if key else {},
            transport=transport,
        )
        self._bases = {
            "journey": settings.journey_url.rstrip("/"),
            "channels": settings.channels_url.rstrip("/"),
            "segmenter": settings.segmenter_url.rstrip("/"),
        }

    async def close(self) -> None:
        await self._http.aclose()

    async def get(
        self, service: str, path: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        url = self._bases[service] + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.get(url, params=query)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(service, f"{type(exc).__name__} calling {url}") from exc
        if response.status_code != 200:
            status = response.status_code
            raise ServiceUnavailable(service, f"HTTP {status} from {url}", status)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServiceUnavailable(service, f"{url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise ServiceUnavailable(service, f"{url} did not answer a JSON object")
        return body

    async def journeys(self) -> dict[str, Any]:
        return await self.get("journey", "/v1/journeys")

    async def journey_stats(self, journey_id: str) -> dict[str, Any]:
        return await self.get("journey", f"/v1/journeys/{quote(journey_id, safe='')}/stats")

    async def profile_journeys(self, profile_id: str) -> dict[str, Any]:
        return await self.get("journey", f"/v1/profiles/{quote(profile_id, safe='')}/journeys")

    async def message_stats(self, **params: Any) -> dict[str, Any]:
        return await self.get("channels", "/v1/messages/stats", params)

    async def profile_segments(self, profile_id: str) -> dict[str, Any]:
        return await self.get("segmenter", f"/v1/profiles/{quote(profile_id, safe='')}/segments")


class DeadLetterCounter:
    """Records held on `jm.dead-letter`: end minus beginning offsets of every partition, from
    one long-lived consumer that joins no group (started on first use)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self._settings.kafka_bootstrap_servers,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"{self._settings.service_name}-dead-letter-count",
                    request_timeout_ms=int(TIMEOUT_S * 1000),
                )
                await consumer.start()
                self._consumer = consumer
            return self._consumer

    async def count(self) -> int:
        consumer = await self._started()
        await asyncio.wait_for(consumer.topics(), TIMEOUT_S)  # refreshes the metadata
        found = consumer.partitions_for_topic(DEAD_LETTER) or {0}
        tps = [TopicPartition(DEAD_LETTER, p) for p in sorted(found)]
        ends = await asyncio.wait_for(consumer.end_offsets(tps), TIMEOUT_S)
        starts = await asyncio.wait_for(consumer.beginning_offsets(tps), TIMEOUT_S)
        return int(sum(ends[tp] - starts[tp] for tp in tps))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
