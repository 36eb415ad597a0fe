"""Months of history for the demo shop's customers (journeyman.shop), as a backend would send
it: orders, refunds, referrals and survey answers with past timestamps. Seeded, so a run shows
the same picture; relative to `now`, so the charts always end today."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from journeyman.shop import Customer

SURVEY_STEPS = {"nps": "ask-nps", "csat": "ask-csat", "ces": "ask-ces"}


def history(
    shoppers: list[Customer], rng: random.Random, run: str, now: datetime, days: int = 180
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(c: Customer, at: datetime, **fields: Any) -> None:
        out.append({"type": "track", "messageId": f"{run}-h{len(out):06d}", "userId": c.user_id,
                    "timestamp": at.isoformat(), **fields})  # fmt: skip

    for c in shoppers:
        first = now - timedelta(days=rng.uniform(20, days))
        if c.buys:
            at = first
            for _ in range(rng.choice((1, 1, 2, 3, 4, 6))):
                if at >= now - timedelta(hours=1):
                    break
                revenue = round(rng.uniform(15, 160), 2)
                add(c, at, event="Order Completed", properties={"revenue": revenue,
                                                                 "currency": "EUR"})  # fmt: skip
                at += timedelta(days=rng.expovariate(1 / 30))
            if rng.random() < 0.1:
                add(c, first + timedelta(days=3), event="Order Refunded",
                    properties={"revenue": 15.0})  # fmt: skip
        if rng.random() < 0.25:
            add(c, first + timedelta(days=1), event="Referral",
                properties={"referee_email": f"friend.{c.user_id}@example.com"})  # fmt: skip
        for survey, step in SURVEY_STEPS.items():
            if rng.random() < 0.7:
                high = {"nps": 10, "csat": 5, "ces": 7}[survey]
                low = 0 if survey == "nps" else 1
                score = min(high, max(low, round(rng.gauss(0.75 * high, high / 4))))
                at = first + timedelta(days=rng.uniform(0, (now - first).days))
                dispatch = f"{run}-{c.user_id}-{survey}"
                properties = {"survey": survey, "score": score, "journey_id": "post-purchase",
                              "step_id": step, "dispatch_id": dispatch}  # fmt: skip
                add(c, at, event="Survey Responded", properties=properties)
    return out
