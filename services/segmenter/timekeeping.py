"""Use case: move customers whose membership changes with time alone, without a new event.

Each decision of a time-dependent segment stores the next instant its answer may change; here
the due ones are claimed (`FOR UPDATE SKIP LOCKED`, so replicas share the work), decided again
with the stored snapshot and facts, and re-armed. Profiles the consumer is busy with are left
for the next pass rather than waited for, so the two never deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import repository
from services.segmenter.catalog import Catalog
from services.segmenter.service import decide_profiles, write_decisions
from shared.kafka import OutRecord


async def run_due_timers(
    conn: AsyncConnection, catalog: Catalog, now: datetime, limit: int = 1_000
) -> tuple[int, list[OutRecord]]:
    """(timers handled, change records) for one pass over due timers."""
    due = await repository.due_timers(conn, now, limit)
    if not due:
        return 0, []
    wanted: dict[str, set[str]] = defaultdict(set)
    for profile_id, segment_id in due:
        wanted[profile_id].add(segment_id)
    snapshots = await repository.snapshots_for_update(conn, wanted, skip_locked=True)
    handled = [(p, s) for p, s in due if p in snapshots]
    await repository.write_changes(conn, repository.Changes(cleared=handled), now)
    plans = {pid: catalog.with_dependents(wanted[pid]) for pid, snap in snapshots.items() if snap}
    decisions, _ = await decide_profiles(conn, catalog, plans, snapshots, now)
    out = await write_decisions(conn, decisions, snapshots, now, cause=f"clock@{now.isoformat()}")
    return len(handled), out
