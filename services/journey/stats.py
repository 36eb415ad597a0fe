"""The funnel of a journey from its counters: what the stats endpoint and the console show."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from services.journey.dsl import Journey
from services.journey.engine import JOURNEY
from services.journey.graph import edges


def graph(journey: Journey) -> dict[str, Any]:
    nodes = [{"id": s.id, "type": s.type, "label": s.name or _label(s)} for s in journey.steps]
    links = [{"from": e.source, "to": e.target, "label": e.label} for e in edges(journey)]
    return {"nodes": nodes, "edges": links}


def _label(step: Any) -> str:
    labels: dict[str, Callable[[Any], str]] = {
        "send": lambda s: f"{s.channel}: {s.template}",
        "wait": lambda s: (
            s.duration
            or (f"until {s.until_time}" if s.until_time else f"until {s.until_date_attribute}")
        ),
        "wait_for_event": lambda s: f"{s.event} within {s.timeout}",
        "goto": lambda s: f"back to {s.target} (max {s.max_loops})",
        "webhook": lambda s: f"{s.method} {s.url}",
        "update_profile": lambda s: ", ".join(s.traits),
    }
    detail = labels.get(step.type)
    return f"{step.type}: {detail(step)}" if detail else step.type


def funnel(
    journey: Journey,
    counter_rows: Iterable[Any],
    statuses: dict[str, int],
    waiting: dict[str, int],
) -> dict[str, Any]:
    by_step: dict[str, dict[str, Any]] = {}
    groups = {g: {"entered": 0, "converted": 0} for g in ("treatment", "holdout")}
    for step_id, metric, label, total in counter_rows:
        n = int(total)
        if step_id == JOURNEY:
            if metric in ("entered", "converted") and label in groups:
                groups[label][metric] += n
            continue
        entry = by_step.setdefault(
            step_id, {"entered": 0, "exited": 0, "converted": 0, "branches": {}}
        )
        if metric == "branch":
            entry["branches"][label] = entry["branches"].get(label, 0) + n
        elif metric in entry:
            entry[metric] += n
    steps = []
    for step in journey.steps:
        found = by_step.get(step.id, {"entered": 0, "exited": 0, "converted": 0, "branches": {}})
        steps.append(
            {
                "step_id": step.id,
                "type": step.type,
                "entered": found["entered"],
                "waiting": waiting.get(step.id, 0),
                "exited": found["exited"],
                "converted": found["converted"],
                "branches": found["branches"],
            }
        )
    conversions = groups["treatment"]["converted"] + groups["holdout"]["converted"]
    return {
        "journey_id": journey.id,
        "version": journey.version,
        "instances": {k: statuses.get(k, 0) for k in ("active", "completed", "exited")},
        "steps": steps,
        "goal": {"event": journey.goal.event if journey.goal else None, "conversions": conversions},
        "groups": groups,
        "graph": graph(journey),
    }
