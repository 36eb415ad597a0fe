"""A journey's performance in one document: the per-step funnel from the journey service's
stats, the message rates of its send steps from the channels service's stats, and the uplift
of the treatment group over the holdout. Pure: it only combines the two services' answers.

Rates, as email service providers define them: delivery, bounce and failure per message sent;
open, click and unsubscribe per message delivered; click-to-open per message opened. A rate
whose base is zero is None, not 0.
"""

from __future__ import annotations

from typing import Any

from services.profile.uplift import uplift

COUNTS = ("sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "failed")
RATES = {
    "delivery_rate": ("delivered", "sent"),
    "bounce_rate": ("bounced", "sent"),
    "failure_rate": ("failed", "sent"),
    "open_rate": ("opened", "delivered"),
    "click_rate": ("clicked", "delivered"),
    "click_to_open_rate": ("clicked", "opened"),
    "unsubscribe_rate": ("unsubscribed", "delivered"),
}


def _n(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def message_rates(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts of one channel (or step) with its rates beside them."""
    known = {k: _n(counts.get(k)) for k in COUNTS}
    rates = {name: _ratio(known[a], known[b]) for name, (a, b) in RATES.items()}
    return {**counts, **known, **rates}


def funnel(stats: dict[str, Any]) -> list[dict[str, Any]]:
    steps = []
    for step in stats.get("steps", []):
        entered = _n(step.get("entered"))
        steps.append(
            {
                **step,
                "conversion_rate": _ratio(_n(step.get("converted")), entered),
                "exit_rate": _ratio(_n(step.get("exited")), entered),
            }
        )
    return steps


def holdout_uplift(stats: dict[str, Any], confidence: float = 0.95) -> dict[str, Any]:
    groups = stats.get("groups") or {}
    treated, held = groups.get("treatment") or {}, groups.get("holdout") or {}
    result = uplift(
        _n(treated.get("entered")), _n(treated.get("converted")),
        _n(held.get("entered")), _n(held.get("converted")), confidence,
    )  # fmt: skip
    return {"treatment": treated, "holdout": held, **result.as_dict()}


def journey_report(stats: dict[str, Any], channels: dict[str, Any] | None) -> dict[str, Any]:
    """`channels` is the channels stats answer for this journey, or None if it was unavailable."""
    journey_id = stats.get("journey_id")
    goal = dict(stats.get("goal") or {})
    entered = sum(_n(g.get("entered")) for g in (stats.get("groups") or {}).values())
    goal["conversion_rate"] = _ratio(_n(goal.get("conversions")), entered)
    messages = None
    if channels is not None:
        messages = [
            message_rates(row)
            for row in channels.get("by_step", [])
            if row.get("journey_id") in (None, journey_id)
        ]
    return {
        "journey_id": journey_id,
        "version": stats.get("version"),
        "instances": stats.get("instances", {}),
        "funnel": funnel(stats),
        "goal": goal,
        "uplift": holdout_uplift(stats),
        "messages": messages,
    }
