"""Profile merges and erasures, as the profile service announces them on `jm.profile-events`.

A merge moves what the segmenter knows of the merged-away profile (event facts, purchases,
membership history) to the survivor, drops the merged-away memberships without publishing
anything (the customer did not leave a segment: their id changed) and has every segment
re-decided for the survivor. An erasure drops everything held about the customer. Both leave a
tombstone version so a late snapshot of the vanished id cannot bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter import repository
from shared.contracts import ERASED_VERSION, PROFILE_ERASED, PROFILE_MERGED, ProfileEventRecord


@dataclass
class Outcome:
    gone: set[str] = field(default_factory=set)
    """Profiles erased or merged away: nothing more to decide for them."""
    merged_into: set[str] = field(default_factory=set)
    """Survivors of a merge: every segment is decided again for them."""


def _is(record: ProfileEventRecord, name: str) -> bool:
    return record.event.get("type") == "track" and record.event.get("event") == name


def merged_ids(batch: Iterable[ProfileEventRecord]) -> set[str]:
    """Ids merged away in this batch (their rows are locked with the survivors')."""
    out = set()
    for record in batch:
        if _is(record, PROFILE_MERGED):
            merged = (record.event.get("properties") or {}).get("merged_profile_id")
            if isinstance(merged, str):
                out.add(merged)
    return out


async def apply(conn: AsyncConnection, records: Sequence[ProfileEventRecord]) -> Outcome:
    outcome = Outcome()
    for record in records:
        props = record.event.get("properties") or {}
        if _is(record, PROFILE_ERASED):
            erased = props.get("profile_id") or record.profile.profile_id
            await repository.forget(conn, [str(erased)], ERASED_VERSION)
            outcome.gone.add(str(erased))
        elif _is(record, PROFILE_MERGED):
            merged = props.get("merged_profile_id")
            survivor = str(props.get("into_profile_id") or record.profile.profile_id)
            if not isinstance(merged, str) or merged == survivor:
                continue
            await repository.move_history(conn, merged, survivor)
            await repository.forget(conn, [merged], ERASED_VERSION)
            outcome.gone.add(merged)
            outcome.merged_into.add(survivor)
    return outcome
