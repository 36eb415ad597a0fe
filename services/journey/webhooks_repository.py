"""SQL of webhook calls: queued in the transaction that moved the instance, claimed by the
webhook worker, marked `calling` (committed) before the request goes out, so a crash leaves an
`unknown` call for an operator instead of a silent second call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey.models import webhook_calls
from services.journey.state import WebhookCall
from shared.db import any_of


async def queue(conn: AsyncConnection, calls: Sequence[WebhookCall]) -> None:
    if not calls:
        return
    rows = [
        {
            "call_id": c.call_id,
            "instance_id": c.instance_id,
            "journey_id": c.journey_id,
            "step_id": c.step_id,
            "method": c.method,
            "url": c.url,
            "headers": c.headers,
            "body": c.body,
            "status": "pending",
        }
        for c in calls
    ]
    await conn.execute(insert(webhook_calls).on_conflict_do_nothing(), rows)


async def claim(conn: AsyncConnection, limit: int) -> list[Any]:
    """Pending calls, locked; marked `calling` in the same (short) transaction."""
    rows = list(
        await conn.execute(
            select(webhook_calls)
            .where(webhook_calls.c.status == "pending")
            .order_by(webhook_calls.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if rows:
        await conn.execute(
            update(webhook_calls)
            .where(any_of(webhook_calls.c.call_id, [r.call_id for r in rows]))
            .values(status="calling", updated_at=func.now())
        )
    return rows


async def finish(
    conn: AsyncConnection, call_id: str, status: str, code: int | None, error: str | None
) -> None:
    await conn.execute(
        update(webhook_calls)
        .where(webhook_calls.c.call_id == call_id)
        .values(status=status, response_code=code, error=error, updated_at=func.now())
    )


async def mark_stale_unknown(conn: AsyncConnection, before: datetime) -> int:
    """Calls left `calling` by a crash: their outcome is unknown and they are not retried."""
    result = await conn.execute(
        update(webhook_calls)
        .where(webhook_calls.c.status == "calling", webhook_calls.c.updated_at < before)
        .values(status="unknown", error="cut off by a crash; not retried")
    )
    return result.rowcount or 0


async def calls_of(conn: AsyncConnection, instance_ids: Sequence[str]) -> list[Any]:
    if not instance_ids:
        return []
    return list(
        await conn.execute(
            select(webhook_calls).where(any_of(webhook_calls.c.instance_id, list(instance_ids)))
        )
    )
