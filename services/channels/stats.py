"""`GET /v1/messages/stats` shaped from counted rows, with no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TOTALS = ("sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "failed",
          "suppressed", "deferred")  # fmt: skip
SERIES = ("sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "failed")
# an attempt still `sending` or `unknown` may have reached the customer: count it as sent
KIND = {"sending": "sent", "unknown": "sent"}


def shape(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, dict[str, int]] = {}
    series: dict[tuple[str, str], dict[str, Any]] = {}
    by_step: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        kind = KIND.get(r["kind"], r["kind"])
        if kind not in TOTALS:
            continue
        channel, n = r["channel"], int(r["n"])
        total = totals.setdefault(channel, dict.fromkeys(TOTALS, 0))
        total[kind] += n
        if kind not in SERIES:
            continue
        bucket = r["bucket"].isoformat()
        point = series.setdefault(
            (bucket, channel), {"bucket": bucket, "channel": channel, **dict.fromkeys(SERIES, 0)}
        )
        point[kind] += n
        step = by_step.setdefault(
            (r["journey_id"], r["step_id"], channel),
            {"journey_id": r["journey_id"], "step_id": r["step_id"], "channel": channel,
             **dict.fromkeys(SERIES, 0)},
        )  # fmt: skip
        step[kind] += n
    return {
        "totals": totals,
        "series": sorted(series.values(), key=lambda p: (p["bucket"], p["channel"])),
        "by_step": sorted(
            by_step.values(), key=lambda s: (s["journey_id"], s["step_id"], s["channel"])
        ),
    }
