"""Use case: re-evaluate segments for the profiles a batch of profile events changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import repository
from services.segmenter.definitions import CompiledSegment
from services.segmenter.membership import changes
from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.contracts import ProfileEventRecord, ProfileSnapshot, SegmentChange
from shared.kafka import OutRecord
from shared.topics import SEGMENT_CHANGES

SOURCE = "journeyman/segmenter"


async def evaluate(
    conn: AsyncConnection, segments: Sequence[CompiledSegment], batch: Sequence[ProfileEventRecord]
) -> list[OutRecord]:
    latest: dict[str, ProfileSnapshot] = {}
    for record in batch:
        known = latest.get(record.profile.profile_id)
        if known is None or record.profile.version > known.version:
            latest[record.profile.profile_id] = record.profile
    current = await repository.memberships_of(conn, latest)
    now = datetime.now(UTC)
    entered_rows, exited_pairs, out = [], [], []
    for profile_id, snapshot in latest.items():
        entered, exited = changes(segments, snapshot.model_dump(mode="json"), current[profile_id])
        entered_rows += [(profile_id, s, snapshot.version) for s in sorted(entered)]
        exited_pairs += [(profile_id, s) for s in sorted(exited)]
        for segment_id, kind in [(s, "entered") for s in sorted(entered)] + [
            (s, "exited") for s in sorted(exited)
        ]:
            change = SegmentChange(
                profile_id=profile_id, segment_id=segment_id, change=kind,
                profile=snapshot, changed_at=now,
            )  # fmt: skip
            out.append(
                OutRecord(
                    SEGMENT_CHANGES,
                    dumps(change.model_dump(mode="json")),
                    profile_id.encode(),
                    binary_headers(
                        event_id=f"{profile_id}:{segment_id}:{kind}:{snapshot.version}",
                        event_type=f"journeyman.segment.{kind}",
                        source=SOURCE,
                        time=now,
                        subject=profile_id,
                    ),
                )
            )
    await repository.enter(conn, entered_rows)
    await repository.leave(conn, exited_pairs)
    return out
