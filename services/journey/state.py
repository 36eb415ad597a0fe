"""A journey instance as the engine sees it: plain data, stored as one row (indexed columns
plus a JSON document), so the engine needs no database to run it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from shared.codec import json_text
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


class StoredProfile:
    """A snapshot as the journey's projection stored it (a validated `ProfileSnapshot` when it
    was written), kept as its JSON text: the timer path reads thousands a batch and most are
    only copied into a dispatch, so they are decoded only when something reads a field."""

    __slots__ = ("_doc", "profile_id", "raw")

    def __init__(self, profile_id: str, raw: str) -> None:
        self.profile_id, self.raw = profile_id, raw
        self._doc: dict[str, Any] | None = None

    @property
    def doc(self) -> dict[str, Any]:
        """The snapshot as `model_dump(mode="json")` gives it (read-only: it is shared)."""
        if self._doc is None:
            self._doc = orjson.loads(self.raw)
        return self._doc

    @property
    def user_id(self) -> str | None:
        value = self.doc.get("user_id")
        return None if value is None else str(value)

    @property
    def anonymous_id(self) -> str | None:
        value = self.doc.get("anonymous_id")
        return None if value is None else str(value)

    def snapshot(self) -> ProfileSnapshot:
        return ProfileSnapshot.model_validate_json(self.raw)


_SNAPSHOT_JSON = ProfileSnapshot.__pydantic_serializer__.to_json
Profile = ProfileSnapshot | StoredProfile
"""A customer as the engine reads them: decoded from a record, or as stored."""


def snapshot_of(profile: Profile) -> ProfileSnapshot:
    return profile.snapshot() if isinstance(profile, StoredProfile) else profile


@dataclass(slots=True)
class Dispatch:
    """A send the engine asks for: the fields of `DispatchRequest`, encoded straight to the
    record's JSON (no model built and validated per message, the stored profile copied as
    its JSON text). `request()` gives the contract's model (the tools, the tests)."""

    dispatch_id: str
    profile_id: str
    channel: str
    message_type: str
    template: str
    journey_id: str
    journey_version: int
    step_id: str
    priority: int
    data: dict[str, Any]
    profile: Profile | None
    requested_at: datetime

    def fields(self, profile: Any) -> dict[str, Any]:
        return {
            "dispatch_id": self.dispatch_id,
            "profile_id": self.profile_id,
            "channel": self.channel,
            "message_type": self.message_type,
            "template": self.template,
            "journey_id": self.journey_id,
            "journey_version": self.journey_version,
            "step_id": self.step_id,
            "priority": self.priority,
            "data": self.data,
            "profile": profile,
            "requested_at": self.requested_at,
        }

    def json(self, text: Callable[[ProfileSnapshot], str]) -> bytes:
        """The record value: the JSON `DispatchRequest` has (UTC written with `Z`), the
        snapshot copied in as JSON text: as stored, or the batch's text of a decoded one
        (`Effects.json`, which the stored projection reuses)."""
        profile = self.profile
        if profile is None:
            value: Any = None
        else:
            value = orjson.Fragment(
                profile.raw if isinstance(profile, StoredProfile) else text(profile)
            )
        return orjson.dumps(self.fields(value), option=orjson.OPT_UTC_Z)

    def request(self) -> DispatchRequest:
        profile = None if self.profile is None else snapshot_of(self.profile)
        return DispatchRequest.model_validate(self.fields(profile))


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

    dispatches: list[Dispatch] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[WebhookCall] = field(default_factory=list)
    counters: Counter[CounterKey] = field(default_factory=Counter)
    lateness_s: list[float] = field(default_factory=list)
    docs: dict[int, tuple[ProfileSnapshot, dict[str, Any]]] = field(default_factory=dict)
    texts: dict[int, tuple[ProfileSnapshot, str]] = field(default_factory=dict)

    def doc(self, profile: Profile) -> dict[str, Any]:
        """`profile.model_dump(mode="json")`, once per snapshot in a batch (conditions, date
        triggers and waits until a time of day all read it). Read-only: it is shared."""
        if isinstance(profile, StoredProfile):
            return profile.doc
        hit = self.docs.get(id(profile))
        if hit is not None and hit[0] is profile:
            return hit[1]
        doc = profile.model_dump(mode="json")
        self.docs[id(profile)] = profile, doc  # holding the snapshot keeps its id unique
        return doc

    def json(self, profile: ProfileSnapshot) -> str:
        """The snapshot's JSON text, once per snapshot in a batch (its dispatches and the
        stored projection both carry it): from the batch's dump when there is one, else
        pydantic's own encoder (twice as fast as dumping a dict and encoding that), so a
        snapshot nothing reads the fields of is never dumped to a dict."""
        hit = self.texts.get(id(profile))
        if hit is not None and hit[0] is profile:
            return hit[1]
        dumped = self.docs.get(id(profile))
        if dumped is not None and dumped[0] is profile:
            text = json_text(dumped[1])
        else:
            text = _SNAPSHOT_JSON(profile).decode()
        self.texts[id(profile)] = profile, text  # holding the snapshot keeps its id unique
        return text

    def count(self, inst: Instance, step: str, metric: str, label: str = "") -> None:
        self.counters[(inst.journey_id, inst.version, step, metric, label)] += 1
