"""Journeys as code: `validate` (every problem as file:line:col), `simulate` (one customer on a
virtual clock, content rendered, nothing sent), `backtest` (stored history replayed through a
draft, read-only) and `diagram` (Mermaid, and SVG when Graphviz is installed)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from liquid import CachingFileSystemLoader, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError
from pydantic import ValidationError

from services.journey.compiled import CompiledJourney
from services.journey.dsl import Journey, ScheduleTrigger, SegmentTrigger
from services.journey.durations import parse_duration
from services.journey.engine import Engine
from services.journey.graph import edges, problems
from services.journey.simulator import Simulation
from shared.contracts import ProfileSnapshot

Loc = tuple[str | int, ...]
PARTS = {
    "email": ("subject", "html", "text"),
    "sms": ("sms",),
    "push": ("push_title", "push_body"),
    "webhook": (),
}


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


# -- validate ---------------------------------------------------------------------------
def _positions(node: yaml.Node, loc: Loc, out: dict[Loc, tuple[int, int]]) -> None:
    out[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _positions(value, (*loc, key.value), out)
            out[(*loc, key.value)] = (key.start_mark.line + 1, key.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _positions(item, (*loc, i), out)


def _where(positions: dict[Loc, tuple[int, int]], loc: Sequence[str | int]) -> tuple[int, int]:
    """Position of the deepest part of `loc` present in the file (pydantic adds union tags)."""
    kept: Loc = ()
    for part in loc:
        if (*kept, part) in positions:
            kept = (*kept, part)
    return positions.get(kept, (1, 1))


def check_file(path: Path, segments: set[str] | None, templates: Path | None) -> list[Problem]:
    """Every problem of one journey file."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return [Problem(str(path), line, col, f"invalid YAML: {exc.problem or exc.context}")]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [Problem(str(path), 1, 1, f"cannot read: {exc}")]
    positions: dict[Loc, tuple[int, int]] = {}
    if node is not None:
        _positions(node, (), positions)

    def at(loc: Sequence[str | int], message: str) -> Problem:
        line, col = _where(positions, loc)
        return Problem(str(path), line, col, message)

    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors(include_url=False):
            loc = [p for p in err["loc"] if isinstance(p, str | int)]
            field = ".".join(str(p) for p in _kept(positions, loc)) or "document"
            message = (
                str(err["msg"]).splitlines()[0].removeprefix("Value error, ")
            )  # CEL adds lines
            found.append(at(loc, f"{field}: {message}"))
        return _dedupe(found)
    out = [at(loc, message) for loc, message in problems(journey)]
    out += _references(journey, at, segments, templates)
    return out


def _kept(positions: dict[Loc, tuple[int, int]], loc: Sequence[str | int]) -> Loc:
    kept: Loc = ()
    for part in loc:
        if (*kept, part) in positions:
            kept = (*kept, part)
    return kept


def _dedupe(found: list[Problem]) -> list[Problem]:
    """A union field fails once per alternative; one message per place is enough."""
    seen: set[tuple[int, int]] = set()
    out = []
    for p in found:
        if (p.line, p.col) not in seen:
            seen.add((p.line, p.col))
            out.append(p)
    return out


def _references(
    journey: Journey, at: Any, segments: set[str] | None, templates: Path | None
) -> list[Problem]:
    out: list[Problem] = []
    if segments is not None:
        named: list[tuple[Loc, str]] = []
        if isinstance(journey.trigger, SegmentTrigger | ScheduleTrigger):
            named.append((("trigger", "segment"), journey.trigger.segment))
        if journey.entry.audience:
            named.append((("entry", "audience"), journey.entry.audience))
        for i, c in enumerate(journey.exit_on):
            for key in ("segment_exited", "segment_entered"):
                if getattr(c, key):
                    named.append((("exit_on", i, key), getattr(c, key)))
        out += [
            at(loc, f"unknown segment {name!r} (not in the segments directory)")
            for loc, name in named
            if name not in segments
        ]
    if templates is not None:
        for i, step in enumerate(journey.steps):
            if step.type != "send":
                continue
            folder = templates / step.template
            if not folder.is_dir():
                out.append(at(("steps", i, "template"), f"unknown template {step.template!r}"))
                continue
            missing = [p for p in PARTS[step.channel] if not (folder / f"{p}.liquid").exists()]
            if missing:
                out.append(
                    at(
                        ("steps", i, "template"),
                        f"template {step.template!r} has no "
                        f"{', '.join(f'{m}.liquid' for m in missing)} for {step.channel}",
                    )
                )
    return out


def validate_paths(
    paths: Sequence[Path], segments_dir: Path | None, templates_dir: Path | None
) -> tuple[int, list[Problem]]:
    """Files checked and problems found, for journey files or directories of them."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    segments = _segment_ids(segments_dir) if segments_dir and segments_dir.is_dir() else None
    templates = templates_dir if templates_dir and templates_dir.is_dir() else None
    found: list[Problem] = []
    ids: dict[str, Path] = {}
    for path in files:
        file_problems = check_file(path, segments, templates)
        found += file_problems
        if not file_problems:
            jid = str((yaml.safe_load(path.read_text()) or {}).get("id"))
            if jid in ids:
                found.append(Problem(str(path), 1, 1, f"id {jid!r} already used by {ids[jid]}"))
            ids[jid] = path
    return len(files), found


def _segment_ids(directory: Path) -> set[str]:
    out = set()
    for path in directory.glob("*.y*ml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and data.get("id"):
            out.add(str(data["id"]))
    return out


# -- simulate ---------------------------------------------------------------------------
def _load(path: Path) -> Journey:
    return Journey.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def simulate(
    journey_path: Path,
    profile: dict[str, Any],
    events: list[dict[str, Any]],
    templates_dir: Path,
    horizon: timedelta = timedelta(days=60),
) -> list[str]:
    """The path one customer takes, with timestamps and each message rendered."""
    cj = CompiledJourney(_load(journey_path))
    stamps = [_time(e.get("timestamp")) for e in events]
    start = min([s for s in stamps if s] or [datetime.now(UTC)])
    sim = Simulation(cj, start, Engine())
    snapshot = ProfileSnapshot.model_validate(
        {"profile_id": "simulated", "version": 1, "updated_at": start.isoformat(), **profile}
    )
    sim.add_profile(snapshot, set(profile.get("segments", [])))
    for event, stamp in zip(events, stamps, strict=True):
        if event.get("type") == "segment":
            sim.segment(
                snapshot.profile_id,
                str(event["segment"]),
                str(event.get("change", "entered")),
                stamp,
            )
        else:
            sim.event({"type": "track", "userId": snapshot.user_id, **event}, stamp)
    sim.run_for(horizon)
    env = Environment(
        loader=CachingFileSystemLoader(templates_dir), undefined=StrictDefaultUndefined
    )
    lines = [f"{at.isoformat()}  {text}" for at, _, text in sim.trace]
    for d in sim.dispatches:
        lines.append(
            f"--- {d.requested_at.isoformat()}  {d.channel} {d.template} "
            f"({d.message_type}, dispatch {d.dispatch_id})"
        )
        variables = {
            "profile": snapshot.model_dump(mode="json"),
            "event": d.data.get("event", {}),
            "journey": d.data.get("journey", {}),
            "overrides": d.data.get("overrides", {}),
            "customer": snapshot.traits,
            "links": {
                "unsubscribe": "https://example.invalid/unsubscribe",
                "preferences": "https://example.invalid/preferences",
                **({"survey": "https://example.invalid/survey"} if d.data.get("survey") else {}),
            },
        }
        for part in PARTS[d.channel]:
            try:
                rendered = env.get_template(f"{d.template}/{part}.liquid").render(**variables)
            except LiquidError as exc:
                rendered = f"!! cannot render: {exc}"
            lines.append(f"    [{part}] " + rendered.strip().replace("\n", "\n    "))
    return lines


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from exc
    return out


# -- backtest ---------------------------------------------------------------------------
@dataclass
class Backtest:
    customers: int
    events: int
    entered: int
    per_step: dict[str, int]
    sends: dict[str, int]
    converted: int


def replay(
    journey: Journey,
    history: dict[str, list[dict[str, Any]]],
    profiles: dict[str, dict[str, Any]],
    until: datetime,
) -> Backtest:
    """Each customer's stored events in order through the draft, on a virtual clock."""
    cj = CompiledJourney(journey)
    entered = converted = events = 0
    per_step: Counter[str] = Counter()
    sends: Counter[str] = Counter()
    for pid, timeline in history.items():
        first = _time(timeline[0].get("timestamp")) or until
        sim = Simulation(cj, first, Engine())
        snapshot = {
            "profile_id": pid,
            "version": 1,
            "updated_at": first.isoformat(),
            **profiles.get(pid, {}),
        }
        sim.add_profile(ProfileSnapshot.model_validate(snapshot))
        for event in timeline:
            if event.get("type") == "track":
                sim.event({**event, "userId": pid}, _time(event.get("timestamp")) or first)
                events += 1
        sim.advance_to(until)
        for (_, _, step, metric, _label), n in sim.counters.items():
            if step == "" and metric == "entered":
                entered += n
            elif step == "" and metric == "converted":
                converted += n
            elif metric == "entered":
                per_step[step] += n
        for d in sim.dispatches:
            sends[d.template] += 1
    return Backtest(len(history), events, entered, dict(per_step), dict(sends), converted)


async def load_history(
    database_url: str, since: datetime
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The profile service's timeline since `since` and each customer's current traits,
    read in one read-only transaction."""
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction(readonly=True):
            rows = await conn.fetch(
                "SELECT profile_id, payload FROM profile.timeline WHERE timestamp >= $1 "
                "ORDER BY profile_id, timestamp, seq",
                since,
            )
            ids = sorted({r["profile_id"] for r in rows})
            people = await conn.fetch(
                "SELECT profile_id, user_id, traits, behaviour FROM profile.profiles "
                "WHERE profile_id = ANY($1)",
                ids,
            )
    finally:
        await conn.close()
    history: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        payload = r["payload"]
        history.setdefault(r["profile_id"], []).append(
            orjson.loads(payload) if isinstance(payload, str | bytes) else payload
        )
    profiles = {
        p["profile_id"]: {
            "user_id": p["user_id"],
            "traits": _json(p["traits"]),
            "behaviour": _json(p["behaviour"]),
        }
        for p in people
    }
    return history, profiles


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def since_of(text: str) -> datetime:
    return datetime.now(UTC) - parse_duration(text)


# -- diagram ----------------------------------------------------------------------------
def mermaid(journey: Journey) -> str:
    from services.journey.stats import graph  # noqa: PLC0415

    g = graph(journey)
    lines = [
        "flowchart TD",
        f'    start(["{_esc(_trigger(journey))}"])',
        f"    start --> {_node(journey.steps[0].id)}",
    ]
    for n in g["nodes"]:
        shape = ('{{"%s"}}' if n["type"] in ("branch", "split") else '["%s"]') % _esc(
            f"{n['id']}: {n['label']}"
        )
        lines.append(f"    {_node(n['id'])}{shape}")
    for e in edges(journey):
        label = f"|{_esc(e.label)}|" if e.label else ""
        lines.append(f"    {_node(e.source)} -->{label} {_node(e.target)}")
    return "\n".join(lines) + "\n"


def dot(journey: Journey) -> str:
    from services.journey.stats import graph  # noqa: PLC0415

    g = graph(journey)
    lines = [
        "digraph journey {",
        "  rankdir=TB; node [fontname=Helvetica, shape=box, style=rounded];",
        f'  start [label="{_esc(_trigger(journey))}", shape=oval];',
        f'  start -> "{journey.steps[0].id}";',
    ]
    for n in g["nodes"]:
        shape = "diamond" if n["type"] in ("branch", "split") else "box"
        lines.append(
            f'  "{n["id"]}" [label="{_esc(n["id"] + chr(10) + n["label"])}", shape={shape}];'
        )
    for e in edges(journey):
        lines.append(f'  "{e.source}" -> "{e.target}" [label="{_esc(e.label)}"];')
    return "\n".join([*lines, "}"]) + "\n"


def write_diagram(journey_path: Path, out_dir: Path) -> list[Path]:
    journey = _load(journey_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{journey.id}.mmd"]
    written[0].write_text(mermaid(journey), encoding="utf-8")
    binary = shutil.which("dot")
    if binary:
        svg = out_dir / f"{journey.id}.svg"
        subprocess.run([binary, "-Tsvg", "-o", str(svg)], input=dot(journey).encode(), check=True)
        written.append(svg)
    return written


def _trigger(journey: Journey) -> str:
    t = journey.trigger.model_dump(exclude_none=True)
    return "trigger: " + ", ".join(f"{k}={v}" for k, v in t.items())


def _node(step_id: str) -> str:
    return "s_" + step_id.replace("-", "_")


def _esc(text: str) -> str:
    return text.replace('"', "'")
