"""The step graph of a journey: where each step can go, and the rules a file must keep —
targets exist, only a guarded `goto` jumps backwards (so every loop ends), every step can be
reached. Problems carry the location in the file, so `validate` can point at the line."""

from __future__ import annotations

from dataclasses import dataclass

from services.journey.dsl import GotoStep, Journey, WaitForEventStep
from services.journey.dsl_steps import ExitStep, targets

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def _target_fields(step: object) -> list[tuple[str, str, Loc]]:
    """(label, target, location relative to the step) of each jump a step names."""
    out: list[tuple[str, str, Loc]] = []
    for field in ("next", "on_event", "on_timeout", "default", "target"):
        value = getattr(step, field, None)
        if isinstance(value, str):
            out.append((field, value, (field,)))
    for group in ("cases", "paths"):
        for k, item in enumerate(getattr(step, group, None) or []):
            out.append((getattr(item, "label", None) or item.next, item.next, (group, k, "next")))
    return out


def edges(journey: Journey) -> list[Edge]:
    """Every transition, including falling through to the next step in the list."""
    out: list[Edge] = []
    ids = [s.id for s in journey.steps]
    for i, step in enumerate(journey.steps):
        jumps = targets(step)
        out += [Edge(step.id, t, label) for label, t in jumps]
        falls_through = not isinstance(step, ExitStep) and step.next is None
        if hasattr(step, "cases") and getattr(step, "default", None):
            falls_through = False
        if hasattr(step, "paths"):
            falls_through = False
        if falls_through and i + 1 < len(ids):
            labels = [""]
            if isinstance(step, WaitForEventStep):
                labels = [
                    k
                    for k, v in (("event", step.on_event), ("timeout", step.on_timeout))
                    if v is None
                ]
            elif isinstance(step, GotoStep):
                labels = ["after loops"]
            out += [Edge(step.id, ids[i + 1], label) for label in labels]
    return out


def problems(journey: Journey) -> list[tuple[Loc, str]]:
    """What is wrong with the step graph, each with where it is in the file."""
    found: list[tuple[Loc, str]] = []
    index = {s.id: i for i, s in enumerate(journey.steps)}
    for i, step in enumerate(journey.steps):
        for label, target, loc in _target_fields(step):
            where: Loc = ("steps", i, *loc)
            if target not in index:
                found.append((where, f"step {step.id!r} goes to unknown step {target!r}"))
            elif isinstance(step, GotoStep) and label == "target":
                if index[target] >= i:
                    found.append((where, f"goto {step.id!r} must target an earlier step"))
            elif index[target] <= i:
                found.append(
                    (
                        where,
                        f"step {step.id!r} jumps back to {target!r} ({label}): loops need a "
                        "goto step with max_loops",
                    )
                )
    reachable = _reachable(journey)
    for i, step in enumerate(journey.steps):
        if step.id not in reachable:
            found.append((("steps", i, "id"), f"step {step.id!r} can never be reached"))
    return found


def _reachable(journey: Journey) -> set[str]:
    ids = {s.id for s in journey.steps}
    out_edges: dict[str, list[str]] = {}
    for edge in edges(journey):
        if edge.target in ids:
            out_edges.setdefault(edge.source, []).append(edge.target)
    seen = {journey.steps[0].id}
    todo = [journey.steps[0].id]
    while todo:
        for target in out_edges.get(todo.pop(), []):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
