"""Kafka handler of `jm.events`: decode (bad records are dead-lettered with the reason), apply
in one transaction with the outbox, wake the relay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from services.profile.models import outbox
from services.profile.service import IncomingEvent, apply_events
from services.profile.validation import check_event
from shared.consumer import BatchHandler, Record, Rejected
from shared.decoding import decode_all, decode_event
from shared.events import Event, InvalidEvent
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime

Clock = Callable[[], datetime]
NUL = b"\\u0000"  # valid JSON, but PostgreSQL text and jsonb refuse it


def _utc_now() -> datetime:
    return datetime.now(UTC)


def event_decoder(now: datetime) -> Callable[[Record], Event]:
    """Decodes and checks the records of one batch, against the batch's clock reading."""

    def decode(record: Record) -> Event:
        if record.value and NUL in record.value:
            raise ValueError("invalid event: NUL characters (\\u0000) cannot be stored")
        event = decode_event(record)
        try:
            check_event(event, now)
        except InvalidEvent as exc:
            raise ValueError(f"invalid event: {exc}") from exc
        return event

    return decode


def events_handler(runtime: Runtime, relay: OutboxRelay, clock: Clock = _utc_now) -> BatchHandler:
    async def handle(records: Sequence[Record]) -> Sequence[Rejected]:
        decoded, rejected = decode_all(records, event_decoder(clock()))
        batch = [IncomingEvent(event, rec.headers.get("traceparent")) for rec, event in decoded]
        async with relay.transaction(runtime.engine) as conn:
            await add_to_outbox(conn, outbox, await apply_events(conn, batch))
        return rejected

    return handle
