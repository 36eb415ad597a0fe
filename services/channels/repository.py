"""All SQL of the channels service: the profile projection, send attempts and the policy's
facts. Every hot-path statement takes a whole batch as arrays (`unnest`, `= ANY($1)`) and goes
straight to the asyncpg driver in the caller's transaction (`shared.db.driver_connection`):
measured under the bench, SQLAlchemy's execution path (greenlet, parameter and result
processing) was most of the service's database CPU per batch. JSON goes in as text encoded by
orjson and comes back as text decoded by orjson."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels.models import (
    contacts,
    decisions,
    deferred,
    message_events,
    optouts,
    send_attempts,
    suppressions,
)
from services.channels.policy import OptOut
from shared.contracts import ProfileSnapshot
from shared.db import any_of, driver_connection

WHEN = DateTime(timezone=True)
COUNTED = ("sending", "sent", "unknown")  # attempts a frequency cap counts


ContactRow = tuple[str, int, str]
"""(profile id, version, snapshot JSON text) of one contact."""


def contact_row(snapshot: ProfileSnapshot) -> ContactRow:
    """A snapshot a dispatch carried, as its JSON text (pydantic's encoder, half the time of
    dumping a dict and encoding that)."""
    return snapshot.profile_id, snapshot.version, snapshot.model_dump_json()


async def upsert_contacts(conn: AsyncConnection, rows: Iterable[ContactRow]) -> None:
    """Keep the newest snapshot of each profile; an older one (late or replayed) never wins.

    Rows carry the snapshot as JSON text: a `jm.profiles` record's own bytes once validated,
    so the projection dumps nothing (40 µs a 2 KB snapshot)."""
    newest: dict[str, ContactRow] = {}
    for row in rows:
        current = newest.get(row[0])
        if current is None or row[1] > current[1]:
            newest[row[0]] = row
    if not newest:
        return
    # in id order, as `lock_contacts` locks them: two batches never wait on each other crosswise
    ordered = [newest[k] for k in sorted(newest)]
    await (await driver_connection(conn)).execute(
        _UPSERT_CONTACTS,
        [r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered],
    )  # fmt: skip


_UPSERT_CONTACTS = """
    INSERT INTO channels.contacts AS c (profile_id, version, snapshot, updated_at)
    SELECT p, v, s::json, now() FROM unnest($1::text[], $2::bigint[], $3::text[]) AS x(p, v, s)
    ORDER BY p
    ON CONFLICT (profile_id) DO UPDATE
    SET version = excluded.version, snapshot = excluded.snapshot, updated_at = now()
    WHERE c.version < excluded.version
"""


async def lock_contacts(
    conn: AsyncConnection, profile_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The current snapshots, locked until commit (in id order, so batches never deadlock):
    a consent change or another batch for the same customer waits for this decision."""
    ids = sorted(set(profile_ids))
    if not ids:
        return {}
    rows = await (await driver_connection(conn)).fetch(
        "SELECT profile_id, snapshot::text FROM channels.contacts"
        " WHERE profile_id = ANY($1::text[]) ORDER BY profile_id FOR UPDATE",
        ids,
    )
    return {row[0]: orjson.loads(row[1]) for row in rows}


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


async def optouts_of(conn: AsyncConnection, profile_ids: Sequence[str]) -> dict[str, list[OptOut]]:
    if not profile_ids:
        return {}
    rows = await (await driver_connection(conn)).fetch(
        "SELECT profile_id, channel, message_type, at FROM channels.optouts"
        " WHERE profile_id = ANY($1::text[])",
        list(profile_ids),
    )
    out: dict[str, list[OptOut]] = {}
    for p, channel, message_type, at in rows:
        out.setdefault(p, []).append(OptOut(channel, message_type, at.isoformat()))
    return out


async def add_optout(
    conn: AsyncConnection, profile_id: str, channel: str, message_type: str, at: datetime
) -> None:
    stmt = insert(optouts).values(
        profile_id=profile_id, channel=channel, message_type=message_type, at=at
    )
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=list(optouts.primary_key), set_={"at": at})
    )


async def suppressed_among(
    conn: AsyncConnection, addresses: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    wanted = {(ch, a.lower()) for ch, a in addresses}
    if not wanted:
        return set()
    rows = await (await driver_connection(conn)).fetch(
        "SELECT channel, address FROM channels.suppressions WHERE address = ANY($1::text[])",
        sorted({a for _, a in wanted}),
    )
    return {(r[0], r[1]) for r in rows} & wanted


async def sends_since(
    conn: AsyncConnection, profile_ids: Sequence[str], since: datetime
) -> dict[str, list[tuple[str, str, datetime]]]:
    """What the caps count: attempts sent (or maybe sent) since `since`, by profile."""
    out: dict[str, list[tuple[str, str, datetime]]] = {}
    if not profile_ids:
        return out
    rows = await (await driver_connection(conn)).fetch(
        "SELECT profile_id, channel, message_type, decided_at FROM channels.send_attempts"
        " WHERE profile_id = ANY($1::text[]) AND decided_at > $2 AND status = ANY($3::text[])",
        list(profile_ids), since, list(COUNTED),
    )  # fmt: skip
    for p, channel, message_type, decided_at in rows:
        out.setdefault(p, []).append((channel, message_type, decided_at))
    return out


_CLAIM = """
    INSERT INTO channels.send_attempts (dispatch_id, profile_id, channel, message_type, template,
        journey_id, step_id, status, priority, request, reason, address, decided_at, finished_at)
    SELECT d, p, c, m, t, j, s, st, pr, r::jsonb, re, ad, $13,
        CASE WHEN st = 'suppressed' THEN $13::timestamptz END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::int[], $9::text[], $10::text[], $11::text[], $12::text[])
         AS x(d, p, c, m, t, j, s, pr, r, st, re, ad)
    ON CONFLICT (dispatch_id) DO NOTHING
    RETURNING dispatch_id
"""
_CLAIM_COLUMNS = (
    "dispatch_id", "profile_id", "channel", "message_type", "template", "journey_id", "step_id",
    "priority", "request", "status", "reason", "address",
)  # fmt: skip


async def claim_attempts(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], at: datetime
) -> set[str]:
    """Insert send attempts with their first decision (`status` sending, suppressed or
    deferred, `reason`, `address`; `request` as JSON text); return the dispatch ids never seen
    before: a redelivered one inserts nothing. One statement of arrays whatever the batch size
    (a multi-row VALUES costs SQLAlchemy a second to compile for 2,000 rows), and one row
    version an attempt where claiming `sending` then recording the decision wrote two, each
    with its entries in every index of the table."""
    if not rows:
        return set()
    params = [[r[c] for r in rows] for c in _CLAIM_COLUMNS]
    return {r[0] for r in await (await driver_connection(conn)).fetch(_CLAIM, *params, at)}


_DECIDED = """
    UPDATE channels.send_attempts a
    SET status = x.st, reason = x.re, address = x.ad, decided_at = $5,
        finished_at = CASE WHEN x.st = 'suppressed' THEN $5::timestamptz END,
        -- the cut-off sweeper measures a `sending` attempt from the moment it was let go
        claimed_at = CASE WHEN x.st = 'sending' THEN now() ELSE a.claimed_at END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(d, st, re, ad)
    WHERE a.dispatch_id = x.d
"""
_LOG_COLUMNS = ("dispatch_id", "profile_id", "journey_id", "step_id", "channel", "message_type",
                "decision")  # fmt: skip
_LOGGED = """
    INSERT INTO channels.decisions (dispatch_id, profile_id, journey_id, step_id, channel,
        message_type, decision, reason, at)
    SELECT *, $9::timestamptz
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[])
"""


def attempt_status(decision: str) -> str:
    """An attempt's status after the policy's decision (send, suppressed or deferred)."""
    return "sending" if decision == "send" else decision


async def save_decisions(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], at: datetime, *,
    claimed: bool = False,
) -> None:  # fmt: skip
    """Store policy decisions on the attempts, the deferral queue and the message log.

    rows: `{dispatch_id, profile_id, journey_id, step_id, channel, message_type, decision,
    reason, address, not_before}`, decision send, suppressed or deferred (the message log's
    word; the attempt's status is `attempt_status` of it).
    `claimed=True`: the attempts were inserted with these decisions just now
    (`claim_attempts`), so neither they nor deferral rows of theirs need changing."""
    if not rows:
        return
    if not claimed:
        await (await driver_connection(conn)).execute(
            _DECIDED,
            [r["dispatch_id"] for r in rows], [attempt_status(r["decision"]) for r in rows],
            [r["reason"] for r in rows], [r["address"] for r in rows], at,
        )  # fmt: skip
    later = [r for r in rows if r["decision"] == "deferred"]
    if later:
        stmt = insert(deferred)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[deferred.c.dispatch_id],
                set_={"due_at": stmt.excluded.due_at, "reason": stmt.excluded.reason},
            ),
            [{"dispatch_id": r["dispatch_id"], "profile_id": r["profile_id"],
              "due_at": r["not_before"], "reason": r["reason"]} for r in later],
        )  # fmt: skip
    done = [r["dispatch_id"] for r in rows if r["decision"] != "deferred"]
    if done and not claimed:
        await conn.execute(delete(deferred).where(any_of(deferred.c.dispatch_id, done)))
    await log_decisions(conn, rows, at)


async def log_decisions(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], at: datetime
) -> None:
    """Append to the message log: `{dispatch_id, profile_id, journey_id, step_id, channel,
    message_type, decision, reason}`."""
    if not rows:
        return
    await (await driver_connection(conn)).execute(
        _LOGGED,
        *([r[k] for r in rows] for k in _LOG_COLUMNS),
        [r.get("reason") or r["decision"] for r in rows], at,
    )  # fmt: skip


async def due_deferrals(conn: AsyncConnection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Deferred dispatches now due, locked (SKIP LOCKED: workers side by side take different
    ones); returns the original requests."""
    due = (
        select(deferred.c.dispatch_id)
        .where(deferred.c.due_at <= now)
        .order_by(deferred.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).subquery()
    rows = await conn.execute(
        select(send_attempts.c.request).join(due, due.c.dispatch_id == send_attempts.c.dispatch_id)
    )
    return [r.request for r in rows]


_FINISHED = """
    UPDATE channels.send_attempts a
    SET status = x.st, reason = x.re, address = x.ad, provider_message_id = x.pid,
        attempts = a.attempts + x.tr,
        finished_at = CASE WHEN x.st = 'sending' THEN NULL ELSE now() END
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
         AS x(d, st, re, ad, pid, tr)
    WHERE a.dispatch_id = x.d
"""


async def finish_attempts(conn: AsyncConnection, outcomes: Sequence[dict[str, Any]]) -> None:
    """Set status/reason/address of attempts: `[{dispatch_id, status, reason, address, tries,
    provider_message_id}]`. One statement of arrays, where an executemany is one UPDATE and
    one round trip per row."""
    if not outcomes:
        return
    await (await driver_connection(conn)).execute(
        _FINISHED,
        [o["dispatch_id"] for o in outcomes], [o["status"] for o in outcomes],
        [o.get("reason") for o in outcomes], [o.get("address") for o in outcomes],
        [o.get("provider_message_id") for o in outcomes], [o.get("tries", 0) for o in outcomes],
    )  # fmt: skip


async def mark_cut_off(
    conn: AsyncConnection,
    claimed_before: datetime,
    retry_types: Sequence[str],
    now: datetime,
    alive: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Attempts left `sending` by a process that died mid-send: their fate is unknown. Those of
    the retry types go back to the deferral queue (due now); the rest stay `unknown`."""
    rows = await conn.execute(
        update(send_attempts)
        .where(
            send_attempts.c.status == "sending",
            send_attempts.c.claimed_at < claimed_before,
            send_attempts.c.dispatch_id.not_in(list(alive)),
        )
        .values(
            status=case(
                (send_attempts.c.message_type.in_(list(retry_types) or [""]), "deferred"),
                else_="unknown",
            ),
            reason="cut off before the provider answered",
            was_unknown=True,
            finished_at=func.now(),
        )
        .returning(*(send_attempts.c[n] for n in (
            "dispatch_id", "profile_id", "journey_id", "step_id", "channel", "message_type",
            "status")))
    )  # fmt: skip
    found = [dict(r._mapping) for r in rows]
    retried = [r for r in found if r["status"] == "deferred"]
    if retried:
        await conn.execute(
            insert(deferred).on_conflict_do_nothing(),
            [{"dispatch_id": r["dispatch_id"], "profile_id": r["profile_id"], "due_at": now,
              "reason": "retry after unknown"} for r in retried],
        )  # fmt: skip
    await log_decisions(
        conn,
        [{**r, "decision": "unknown", "reason": "cut off before the provider answered"
          + ("; retried (configured for this message type)" if r["status"] == "deferred"
             else "; not retried")} for r in found],
        now,
    )  # fmt: skip
    return found


async def status_counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(send_attempts.c.status, func.count()).group_by(send_attempts.c.status)
    )
    return dict(rows.tuples().all())


async def pending_deferrals(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(deferred))).scalar_one())


async def count_unknown(conn: AsyncConnection) -> int:
    query = select(func.count()).select_from(send_attempts).where(send_attempts.c.was_unknown)
    return int((await conn.execute(query)).scalar_one())


async def unknown_attempts(conn: AsyncConnection, limit: int = 500) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(send_attempts).where(send_attempts.c.was_unknown)
        .order_by(send_attempts.c.claimed_at.desc()).limit(limit)
    )  # fmt: skip
    return [_attempt(r) for r in rows]


async def attempts_where(
    conn: AsyncConnection, *, profile_id: str | None = None, journey_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """Latest attempts with the decisions logged for each (oldest decision first)."""
    query = select(send_attempts).order_by(send_attempts.c.claimed_at.desc()).limit(limit)
    if profile_id is not None:
        query = query.where(send_attempts.c.profile_id == profile_id)
    if journey_id is not None:
        query = query.where(send_attempts.c.journey_id == journey_id)
    attempts = [_attempt(r) for r in await conn.execute(query)]
    ids = [a["dispatch_id"] for a in attempts]
    log: dict[str, list[dict[str, Any]]] = {}
    if ids:
        rows = await conn.execute(
            select(decisions.c.dispatch_id, decisions.c.decision, decisions.c.reason,
                   decisions.c.at)
            .where(any_of(decisions.c.dispatch_id, ids)).order_by(decisions.c.id)
        )  # fmt: skip
        for r in rows:
            log.setdefault(r.dispatch_id, []).append(
                {"decision": r.decision, "reason": r.reason, "at": r.at.isoformat()}
            )
    for a in attempts:
        a["decisions"] = log.get(a["dispatch_id"], [])
    return attempts


def _attempt(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out.pop("request", None)
    for key in ("claimed_at", "finished_at", "decided_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


async def attempt(conn: AsyncConnection, dispatch_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(send_attempts).where(send_attempts.c.dispatch_id == dispatch_id))
    ).first()
    return None if row is None else {**dict(row._mapping)}


async def attempt_by_provider_id(conn: AsyncConnection, provider_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            select(send_attempts).where(send_attempts.c.provider_message_id == provider_id)
        )
    ).first()
    return None if row is None else {**dict(row._mapping)}


async def add_suppression(conn: AsyncConnection, channel: str, address: str, reason: str) -> None:
    stmt = insert(suppressions).values(channel=channel, address=address.lower(), reason=reason)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[suppressions.c.channel, suppressions.c.address],
            set_={"reason": reason},
        )
    )


async def remove_suppression(conn: AsyncConnection, channel: str, address: str) -> bool:
    result = await conn.execute(
        delete(suppressions).where(
            suppressions.c.channel == channel, suppressions.c.address == address.lower()
        )
    )
    return bool(result.rowcount)


async def list_suppressions(conn: AsyncConnection, channel: str | None) -> list[dict[str, Any]]:
    query = select(suppressions).order_by(suppressions.c.created_at.desc()).limit(1000)
    if channel:
        query = query.where(suppressions.c.channel == channel)
    return [
        {**dict(r._mapping), "created_at": r.created_at.isoformat()}
        for r in await conn.execute(query)
    ]


async def add_message_event(
    conn: AsyncConnection, attempt: dict[str, Any], kind: str, detail: str, at: datetime
) -> bool:
    """Count an engagement or delivery event; True the first time (it is then published)."""
    stmt = insert(message_events).values(
        dispatch_id=attempt["dispatch_id"], kind=kind, detail=detail, channel=attempt["channel"],
        journey_id=attempt["journey_id"], step_id=attempt["step_id"], first_at=at,
    )  # fmt: skip
    upsert = stmt.on_conflict_do_update(
        index_elements=list(message_events.primary_key),
        set_={"count": message_events.c.count + 1},
    ).returning(text("xmax = 0 AS inserted"))
    return bool((await conn.execute(upsert)).scalar_one())


async def message_stats(
    conn: AsyncConnection, journey_id: str | None, since: datetime | None,
    until: datetime | None, bucket: str,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Counts per bucket, channel, journey and step: attempts by status (sent counted when
    decided) and message events (each dispatch once per kind)."""
    params: dict[str, Any] = {"journey": journey_id, "since": since, "until": until,
                              "bucket": bucket}  # fmt: skip
    attempts_sql = text("""
        SELECT date_trunc(:bucket, coalesce(decided_at, claimed_at)) AS bucket, channel,
               journey_id, step_id, status AS kind, count(*) AS n
        FROM channels.send_attempts
        WHERE (CAST(:journey AS text) IS NULL OR journey_id = :journey)
          AND (CAST(:since AS timestamptz) IS NULL OR coalesce(decided_at, claimed_at) >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR coalesce(decided_at, claimed_at) < :until)
        GROUP BY 1, 2, 3, 4, 5
    """)
    events_sql = text("""
        SELECT date_trunc(:bucket, first_at) AS bucket, channel, journey_id, step_id, kind,
               count(DISTINCT dispatch_id) AS n
        FROM channels.message_events
        WHERE (CAST(:journey AS text) IS NULL OR journey_id = :journey)
          AND (CAST(:since AS timestamptz) IS NULL OR first_at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR first_at < :until)
        GROUP BY 1, 2, 3, 4, 5
    """)
    out: list[dict[str, Any]] = []
    for sql in (attempts_sql, events_sql):
        out.extend(dict(r._mapping) for r in await conn.execute(sql, params))
    return {"rows": out}
