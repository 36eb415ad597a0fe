"""Use case: start the journeys a batch of profile events triggers. Runs in the caller's
transaction and returns the dispatch records for the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey import repository
from services.journey.engine import CompiledJourney, dispatches_for, entries_for
from shared.cloudevents import binary_headers, child_traceparent
from shared.codec import dumps
from shared.contracts import ProfileEventRecord
from shared.kafka import OutRecord
from shared.topics import DISPATCH

SOURCE = "journeyman/journey"


async def start_journeys(
    conn: AsyncConnection,
    journeys: Sequence[CompiledJourney],
    batch: Sequence[tuple[ProfileEventRecord, str | None]],
) -> list[OutRecord]:
    now = datetime.now(UTC)
    planned = []
    for record, traceparent in batch:
        for entry in entries_for(journeys, record.event, record.profile):
            planned.append((entry, record, traceparent))
    rows = [
        {
            "instance_id": e.instance_id,
            "journey_id": e.journey.id,
            "journey_version": e.journey.version,
            "profile_id": e.profile_id,
            "entry_key": e.entry_key,
            "status": "completed",
            "current_step": e.journey.steps[-1].id,
        }
        for e, _, _ in planned
    ]
    created = await repository.create_instances(conn, rows)
    out = []
    for entry, record, traceparent in planned:
        if entry.instance_id not in created:
            continue
        for request in dispatches_for(entry, record.event, record.profile, now):
            out.append(
                OutRecord(
                    DISPATCH,
                    dumps(request.model_dump(mode="json")),
                    request.profile_id.encode(),
                    binary_headers(
                        event_id=request.dispatch_id,
                        event_type="journeyman.dispatch",
                        source=SOURCE,
                        time=now,
                        subject=request.profile_id,
                        traceparent=child_traceparent(traceparent),
                    ),
                )
            )
    return out
