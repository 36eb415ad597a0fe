"""RFM in set-based SQL over the segmenter's purchase summary: one pass of window functions for
the whole base, then membership changes, history and outbox rows written by INSERT … SELECT, so
a million customers never travel through Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.segmenter.rfm import RfmConfig
from shared.cloudevents import binary_headers
from shared.outbox import headers_json
from shared.topics import SEGMENT_CHANGES

SOURCE = "journeyman/segmenter"
WORK_MEM = "256MB"


@dataclass(frozen=True)
class Lane:
    """One of a recompute's lanes: the base is split by a hash of the profile id, so each
    customer's scores and changes are written by exactly one lane."""

    index: int
    count: int

    @property
    def params(self) -> dict[str, int]:
        return {"lane": self.index, "lanes": self.count}


def in_lane(column: str) -> str:
    """SQL: the row's customer is in lane `:lane` of `:lanes` (`Lane.params`)."""
    return f"(hashtext({column}) & 2147483647) % :lanes = :lane"


# A Segment change record per row, its value and headers put together as text (the snapshot as
# stored; building json objects per row cost about twice as much). The headers' constant parts
# come from `_header_parts`, so only the two that vary by record are built here.
_OUTBOX_INSERT = text(
    "INSERT INTO segmenter.outbox (topic, key, value, headers)"
    " SELECT :topic, convert_to(c.profile_id, 'UTF8'), convert_to("
    "  '{\"profile_id\":' || to_json(c.profile_id)::text"
    "  || ',\"segment_id\":' || to_json(c.segment_id)::text"
    '  || \',"change":"\' || c.change || \'","profile":\' || p.snapshot::text'
    "  || ',\"changed_at\":\"' || CAST(:stamp AS text) || '\"}', 'UTF8'),"
    "  (CAST(:h0 AS text) || to_json(c.profile_id || ':' || c.segment_id"
    "  || CAST(:id_suffix AS text))::text || CAST(:h1 AS text) || to_json(c.profile_id)::text"
    "  || CAST(:h2 AS text))::json"
    " FROM rfm_changes c JOIN segmenter.profiles p USING (profile_id)"
    " WHERE c.published AND c.change = :change"
)
_ID, _SUBJECT = "\x00ce_id", "\x00ce_subject"  # placeholders no id or profile id contains


def _header_parts(change: str, now: datetime, traceparent: str) -> dict[str, str]:
    """The headers of this run's `change` records as JSON text around their two values that
    vary (`h0 || ce_id || h1 || ce_subject || h2`), cut from `binary_headers` itself. Every
    record of a run continues one trace: the recompute is one piece of work."""
    headers = binary_headers(
        event_id=_ID, event_type=f"journeyman.segment.{change}", source=SOURCE, time=now,
        subject=_SUBJECT, traceparent=traceparent,
    )  # fmt: skip
    text_ = headers_json(headers)  # as every outbox row holds them
    h0, rest = text_.split(orjson.dumps(_ID).decode())
    h1, h2 = rest.split(orjson.dumps(_SUBJECT).decode())
    return {"h0": h0, "h1": h1, "h2": h2}


def _case(config: RfmConfig) -> tuple[str, dict[str, Any]]:
    """The CASE expression naming each customer's segment, boundaries as bound parameters."""
    arms: list[str] = []
    params: dict[str, Any] = {}
    for i, seg in enumerate(config.segments):
        conds = []
        for axis, rng in (("r", seg.recency), ("f", seg.frequency), ("m", seg.monetary)):
            conds.append(f"{axis} BETWEEN :{axis}lo{i} AND :{axis}hi{i}")
            params[f"{axis}lo{i}"], params[f"{axis}hi{i}"] = rng.min, rng.max
        arms.append(f"WHEN {' AND '.join(conds)} THEN :seg{i}")
        params[f"seg{i}"] = seg.segment_id
    return f"CASE {' '.join(arms)} END", params


RUN_LOCK = 0x6A6D_7266  # "jmrf": one RFM recompute at a time across every replica


async def take_run_lock(conn: AsyncConnection) -> bool:
    """The recompute's lock, held until this transaction ends; False if another holds it
    (every replica's clock schedules the recompute: one runs it, the others skip)."""
    return bool(await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": RUN_LOCK}))


async def export_snapshot(conn: AsyncConnection) -> str:
    """This (repeatable read) transaction's snapshot, for the other lanes to share."""
    return str(await conn.scalar(text("SELECT pg_export_snapshot()")))


async def share_snapshot(conn: AsyncConnection, snapshot: str) -> None:
    """See exactly what the exporting lane sees: the first statement of a repeatable read
    transaction. Every lane then scores the same base into the same quintiles."""
    await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))


async def score(conn: AsyncConnection, config: RfmConfig, lane: Lane) -> int:
    """Scores every customer against the whole base, and keeps this lane's."""
    case, params = _case(config)
    params |= lane.params
    # The base's sorts and hash joins in memory rather than spilled to disk, for this
    # transaction only (the changes' anti-join over a million customers: 2.0-3.0 → 1.6 s).
    await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    await conn.execute(text("DROP TABLE IF EXISTS rfm_new"))
    await conn.execute(
        text(
            "CREATE TEMP TABLE rfm_new ON COMMIT DROP AS "  # noqa: S608
            # The CASE holds only bound parameters, built from the validated config.
            f"SELECT profile_id, r, f, m, {case} AS segment_id FROM ("
            " SELECT profile_id,"
            "  ntile(5) OVER (ORDER BY last_order_at, profile_id) AS r,"
            "  ntile(5) OVER (ORDER BY orders_count, profile_id) AS f,"
            "  ntile(5) OVER (ORDER BY monetary, profile_id) AS m"
            # In profile order (the windows leave it in monetary order): the index below, the
            # score writes and every change derived from this table then walk primary keys in
            # order rather than at random.
            f" FROM segmenter.purchases) s WHERE {in_lane('profile_id')} ORDER BY profile_id"
        ),
        params,
    )
    await conn.execute(text("CREATE INDEX ON rfm_new (profile_id)"))
    await conn.execute(text("ANALYZE rfm_new"))
    return int(await conn.scalar(text("SELECT count(*) FROM rfm_new")) or 0)


async def apply_changes(
    conn: AsyncConnection, config: RfmConfig, now: datetime, trace: str, lane: Lane
) -> dict[str, int]:
    """Compare this lane's scores with its customers' RFM memberships; write entered/exited
    everywhere they go. Every record of the run continues the run's one `trace`."""
    await conn.execute(text("DROP TABLE IF EXISTS rfm_changes"))
    # Each change with the profile's version and whether it is published (a known, not erased
    # profile), read from the profiles once here rather than by every insert below.
    await conn.execute(
        text(
            "CREATE TEMP TABLE rfm_changes ON COMMIT DROP AS "  # noqa: S608 (in_lane: constant)
            "SELECT c.profile_id, c.segment_id, c.change, coalesce(p.version, 0) AS version,"
            " coalesce(p.snapshot::text <> '{}', false) AS published FROM ("
            "SELECT n.profile_id, n.segment_id, 'entered'::text AS change FROM rfm_new n"
            " WHERE n.segment_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segmenter.memberships m"
            "  WHERE m.profile_id = n.profile_id AND m.segment_id = n.segment_id) "
            "UNION ALL "
            "SELECT m.profile_id, m.segment_id, 'exited' FROM segmenter.memberships m"
            f" WHERE m.segment_id = ANY(:ids) AND {in_lane('m.profile_id')}"
            " AND NOT EXISTS (SELECT 1 FROM rfm_new n"
            "  WHERE n.profile_id = m.profile_id AND n.segment_id = m.segment_id)"
            ") c LEFT JOIN segmenter.profiles p USING (profile_id) ORDER BY c.profile_id"
        ),
        {"ids": config.segment_ids(), **lane.params},
    )
    # In profile order, every write below walks the primary keys (memberships, history, the
    # snapshots the outbox rows read) in order instead of at random; with statistics, the
    # outbox's join with the snapshots is a merge or hash join over the set, not one index
    # probe per change (the default estimate of an unanalysed table is a few hundred rows).
    await conn.execute(text("ANALYZE rfm_changes"))
    stamp = now.isoformat().replace("+00:00", "Z")
    params = {"now": now, "stamp": stamp, "topic": SEGMENT_CHANGES}
    await conn.execute(
        text(
            "DELETE FROM segmenter.memberships m USING rfm_changes c WHERE c.change = 'exited'"
            " AND m.profile_id = c.profile_id AND m.segment_id = c.segment_id"
        )
    )
    await conn.execute(
        text(
            "INSERT INTO segmenter.memberships"
            " (profile_id, segment_id, profile_version, entered_at)"
            " SELECT profile_id, segment_id, version, :now FROM rfm_changes"
            " WHERE change = 'entered'"
        ),
        params,
    )
    await conn.execute(
        text(
            "INSERT INTO segmenter.membership_history"
            " (profile_id, segment_id, change, profile_version, at)"
            " SELECT profile_id, segment_id, change, version, :now FROM rfm_changes"
        ),
        params,
    )
    # Exits first, then entries: outbox ids keep a customer's exit before their entry, with no
    # sort of the whole set.
    for change in ("exited", "entered"):
        parts = _header_parts(change, now, trace)
        suffix = f":{change}:rfm@{stamp}"
        await conn.execute(
            _OUTBOX_INSERT, {**params, **parts, "change": change, "id_suffix": suffix}
        )
    # Scores are rewritten only where they moved: a stable base costs reads, not writes. Three
    # hash joins over the base (delete, update, insert) rather than one index probe per
    # customer (an upsert), which cost ~25 µs a customer even when nothing changed. The
    # delete goes first: it then never walks the rows the insert just wrote.
    await conn.execute(
        text(
            f"DELETE FROM segmenter.rfm_scores s WHERE {in_lane('s.profile_id')}"  # noqa: S608
            " AND NOT EXISTS (SELECT 1 FROM rfm_new n WHERE n.profile_id = s.profile_id)"
        ),
        lane.params,
    )
    await conn.execute(
        text(
            "UPDATE segmenter.rfm_scores s SET recency = n.r, frequency = n.f, monetary = n.m,"
            " segment_id = n.segment_id, computed_at = :now FROM rfm_new n"
            " WHERE n.profile_id = s.profile_id AND (s.recency, s.frequency, s.monetary,"
            " s.segment_id) IS DISTINCT FROM (n.r, n.f, n.m, n.segment_id)"
        ),
        params,
    )
    await conn.execute(
        text(
            "INSERT INTO segmenter.rfm_scores"
            " (profile_id, recency, frequency, monetary, segment_id, computed_at)"
            " SELECT profile_id, r, f, m, segment_id, :now FROM rfm_new n WHERE NOT EXISTS"
            " (SELECT 1 FROM segmenter.rfm_scores s WHERE s.profile_id = n.profile_id)"
        ),
        params,
    )
    rows = await conn.execute(text("SELECT change, count(*) FROM rfm_changes GROUP BY change"))
    counts: dict[str, int] = {r[0]: r[1] for r in rows}
    return {"entered": int(counts.get("entered", 0)), "exited": int(counts.get("exited", 0))}


async def scores_of(conn: AsyncConnection, profile_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            text(
                "SELECT recency, frequency, monetary, segment_id, computed_at"
                " FROM segmenter.rfm_scores WHERE profile_id = :p"
            ),
            {"p": profile_id},
        )
    ).first()
    return dict(row._mapping) if row else None
