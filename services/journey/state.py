"""A journey instance as the engine sees it: plain data, stored as one row (indexed columns
plus a JSON document), so the engine needs no database to run it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shared.contracts import DispatchRequest, ProfileSnapshot

HISTORY_LIMIT = 100
CounterKey = tuple[str, int, str, str, str]  # journey, version, step ("" = journey), metric, label


_last_stamp: list[tuple[datetime | None, str]] = [(None, "")]


def _iso(at: datetime) -> str:
    """`at.isoformat()`, remembered for the last moment: a batch notes one `now` thousands of
    times. (One tuple swapped whole, so a reader never pairs one moment with another's text.)"""
    seen, text = _last_stamp[0]
    if seen is not at:
        text = at.isoformat()
        _last_stamp[0] = (at, text)
    return text


@dataclass
class Instance:
    instance_id: str
    journey_id: str
    version: int
    profile_id: str
    entry_key: str
    entered_at: datetime
    trigger: dict[str, Any]
    group: str = "treatment"
    status: str = "active"  # active, completed, exited
    step: str | None = None
    visits: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, Any] | None = None
    last_event: dict[str, Any] | None = None
    goal_until: datetime | None = None
    converted_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def waiting_event(self) -> str | None:
        return self.waiting.get("event") if self.waiting else None

    def note(self, at: datetime, step: str | None, what: str) -> None:
        self.history.append({"at": _iso(at), "step": step, "what": what})
        if len(self.history) > HISTORY_LIMIT:
            del self.history[: len(self.history) - HISTORY_LIMIT]

    def document(self) -> dict[str, Any]:
        """The JSON part of the row: what the indexed columns do not already hold."""
        return {
            "trigger": self.trigger,
            "visits": self.visits,
            "waiting": self.waiting,
            "last_event": self.last_event,
            "history": self.history,
            "reason": self.reason,
        }

    def row(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "journey_id": self.journey_id,
            "journey_version": self.version,
            "profile_id": self.profile_id,
            "entry_key": self.entry_key,
            "status": self.status,
            "current_step": self.step,
            "grp": self.group,
            "waiting_event": self.waiting_event,
            "entered_at": self.entered_at,
            "goal_until": self.goal_until,
            "converted_at": self.converted_at,
            "ended_at": self.ended_at,
            "state": self.document(),
        }

    @classmethod
    def from_row(cls, row: Any) -> Instance:
        doc = row.state or {}
        return cls(
            instance_id=row.instance_id,
            journey_id=row.journey_id,
            version=row.journey_version,
            profile_id=row.profile_id,
            entry_key=row.entry_key,
            entered_at=row.entered_at,
            trigger=doc.get("trigger") or {},
            group=row.grp,
            status=row.status,
            step=row.current_step,
            visits=doc.get("visits") or {},
            waiting=doc.get("waiting"),
            last_event=doc.get("last_event"),
            goal_until=row.goal_until,
            converted_at=row.converted_at,
            ended_at=row.ended_at,
            reason=doc.get("reason"),
            history=doc.get("history") or [],
        )

    @classmethod
    def from_record(cls, rec: Any) -> Instance:
        """From a raw row whose `state` was read as JSON text (the repository's hot paths)."""
        doc = orjson.loads(rec["state"]) if rec["state"] else {}
        return cls(
            rec["instance_id"],
            rec["journey_id"],
            rec["journey_version"],
            rec["profile_id"],
            rec["entry_key"],
            rec["entered_at"],
            doc.get("trigger") or {},
            rec["grp"],
            rec["status"],
            rec["current_step"],
            doc.get("visits") or {},
            doc.get("waiting"),
            doc.get("last_event"),
            rec["goal_until"],
            rec["converted_at"],
            rec["ended_at"],
            doc.get("reason"),
            doc.get("history") or [],
        )


@dataclass(frozen=True)
class Timer:
    """A durable timer to schedule: a wait's deadline, a date trigger, a schedule run."""

    timer_id: str
    kind: str  # step, date, schedule
    due_at: datetime
    journey_id: str
    instance_id: str | None = None
    profile_id: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class WebhookCall:
    call_id: str
    instance_id: str
    journey_id: str
    step_id: str
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Effects:
    """Everything a batch of engine steps asks the outside world for."""

    dispatches: list[DispatchRequest] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[WebhookCall] = field(default_factory=list)
    counters: Counter[CounterKey] = field(default_factory=Counter)
    lateness_s: list[float] = field(default_factory=list)
    docs: dict[int, tuple[ProfileSnapshot, dict[str, Any]]] = field(default_factory=dict)

    def doc(self, profile: ProfileSnapshot) -> dict[str, Any]:
        """`profile.model_dump(mode="json")`, once per snapshot in a batch (conditions, date
        triggers and waits until a time of day all read it). Read-only: it is shared."""
        hit = self.docs.get(id(profile))
        if hit is not None and hit[0] is profile:
            return hit[1]
        doc = profile.model_dump(mode="json")
        self.docs[id(profile)] = profile, doc  # holding the snapshot keeps its id unique
        return doc

    def count(self, inst: Instance, step: str, metric: str, label: str = "") -> None:
        self.counters[(inst.journey_id, inst.version, step, metric, label)] += 1
