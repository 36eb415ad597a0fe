"""All SQL of the channels service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels.models import contacts, send_attempts
from shared.db import any_of


async def upsert_contacts(conn: AsyncConnection, snapshots: Iterable[dict[str, Any]]) -> None:
    """Keep the newest snapshot of each profile; an older one (late or replayed) never wins."""
    newest: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        current = newest.get(snap["profile_id"])
        if current is None or snap["version"] > current["version"]:
            newest[snap["profile_id"]] = snap
    if not newest:
        return
    stmt = insert(contacts)
    stmt = stmt.on_conflict_do_update(
        index_elements=[contacts.c.profile_id],
        set_={
            "version": stmt.excluded.version,
            "snapshot": stmt.excluded.snapshot,
            "updated_at": func.now(),
        },
        where=contacts.c.version < stmt.excluded.version,
    )
    rows = [{"profile_id": k, "version": v["version"], "snapshot": v} for k, v in newest.items()]
    await conn.execute(stmt, rows)


async def contacts_of(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    ids = list(set(profile_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(contacts.c.profile_id, contacts.c.snapshot).where(any_of(contacts.c.profile_id, ids))
    )
    return {row.profile_id: row.snapshot for row in rows}


async def claim_attempts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert send attempts; return the dispatch ids never seen before."""
    if not rows:
        return set()
    stmt = (
        insert(send_attempts)
        .values(list(rows))
        .on_conflict_do_nothing()
        .returning(send_attempts.c.dispatch_id)
    )
    return set((await conn.execute(stmt)).scalars())


async def finish_attempts(conn: AsyncConnection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Set status/reason/address of attempts: `[{dispatch_id, status, reason, address}]`."""
    if not outcomes:
        return
    stmt = (
        update(send_attempts)
        .where(send_attempts.c.dispatch_id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            reason=bindparam("b_reason"),
            address=bindparam("b_address"),
            attempts=send_attempts.c.attempts + bindparam("b_tries"),
            finished_at=case((bindparam("b_status") == "sending", null()), else_=func.now()),
        )
    )
    await conn.execute(
        stmt,
        [
            {"b_id": o["dispatch_id"], "b_status": o["status"], "b_reason": o.get("reason"),
             "b_address": o.get("address"), "b_tries": o.get("tries", 0)}
            for o in outcomes
        ],
    )  # fmt: skip


async def mark_cut_off(conn: AsyncConnection, claimed_before: datetime) -> int:
    """Attempts left `sending` by a process that died mid-send: their fate is unknown."""
    result = await conn.execute(
        update(send_attempts)
        .where(send_attempts.c.status == "sending", send_attempts.c.claimed_at < claimed_before)
        .values(
            status="unknown", reason="cut off before the provider answered", finished_at=func.now()
        )
    )
    return int(result.rowcount or 0)


async def status_counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(send_attempts.c.status, func.count()).group_by(send_attempts.c.status)
    )
    return dict(rows.tuples().all())


async def attempts_of(conn: AsyncConnection, profile_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(send_attempts).where(send_attempts.c.profile_id == profile_id)
        .order_by(send_attempts.c.claimed_at.desc()).limit(100)
    )  # fmt: skip
    return [dict(r._mapping) for r in rows]
