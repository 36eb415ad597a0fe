"""A journey run in memory on a virtual clock: the same engine as the service, with the
database replaced by dictionaries. `journeyman simulate`, `backtest` and the unit tests use
it; nothing is sent, stored or published."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.journey import timing
from services.journey.compiled import CompiledJourney
from services.journey.dsl import DateTrigger, EventTrigger, ScheduleTrigger, SegmentTrigger
from services.journey.engine import Engine, instance_id, slim
from services.journey.entry import CustomerFacts, admit, entry_key, refusal
from services.journey.state import CounterKey, Dispatch, Effects, Instance, Timer
from shared.contracts import ProfileSnapshot
from shared.customer_time import customer_zone


@dataclass
class Simulation:
    """One journey and any number of customers, moved by events and by the clock."""

    cj: CompiledJourney
    now: datetime
    engine: Engine = field(default_factory=Engine)
    profiles: dict[str, ProfileSnapshot] = field(default_factory=dict)
    facts: dict[str, CustomerFacts] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    timers: dict[str, Timer] = field(default_factory=dict)
    dispatches: list[Dispatch] = field(default_factory=list)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[Any] = field(default_factory=list)
    counters: Counter[CounterKey] = field(default_factory=Counter)
    trace: list[tuple[datetime, str, str]] = field(default_factory=list)

    # -- inputs -------------------------------------------------------------------------
    def add_profile(self, profile: ProfileSnapshot, segments: set[str] | None = None) -> None:
        self.profiles[profile.profile_id] = profile
        facts = self.facts.setdefault(profile.profile_id, CustomerFacts())
        facts.segments |= segments or set()
        self._plan_date(profile)
        self._plan_schedule()

    def event(self, event: dict[str, Any], at: datetime | None = None) -> None:
        """A customer's track event at `at` (default: now); waits due before it fire first."""
        self.advance_to(at or self.now)
        pid = self._pid(event)
        profile = self.profiles[pid]
        name = event.get("event")
        self._say(pid, f"event {name}")
        for inst in [i for i in self.instances.values() if i.profile_id == pid]:
            if name and self.cj.listens_to(str(name)) and (inst.active or inst.goal_until):
                self._apply(
                    lambda fx, i=inst: self.engine.on_event(
                        self.cj, i, event, profile, self.now, fx
                    )
                )
        trigger = self.cj.journey.trigger
        if isinstance(trigger, EventTrigger) and trigger.event == name:
            variables = {"event": event, "profile": profile.model_dump(mode="json")}
            if self.cj.holds(trigger.condition, variables):
                self._enter(pid, str(event.get("messageId") or f"{name}@{self.now}"), slim(event))

    def segment(
        self, profile_id: str, segment: str, change: str, at: datetime | None = None
    ) -> None:
        self.advance_to(at or self.now)
        facts = self.facts.setdefault(profile_id, CustomerFacts())
        (facts.segments.add if change == "entered" else facts.segments.discard)(segment)
        self._say(profile_id, f"segment {change} {segment}")
        for inst in [i for i in self.instances.values() if i.profile_id == profile_id]:
            self._apply(
                lambda fx, i=inst: self.engine.on_segment(self.cj, i, segment, change, self.now, fx)
            )
        trigger = self.cj.journey.trigger
        if isinstance(trigger, SegmentTrigger) and (trigger.segment, trigger.change) == (
            segment,
            change,
        ):
            self._enter(
                profile_id,
                f"segment:{segment}:{change}:{self.now.isoformat()}",
                {"type": "segment", "segment": segment, "change": change, "properties": {}},
            )

    def advance_to(self, moment: datetime) -> None:
        """Fire every timer due up to `moment`, in due order, each at its own time."""
        while True:
            due = [t for t in self.timers.values() if t.due_at <= moment]
            if not due:
                break
            timer = min(due, key=lambda t: (t.due_at, t.timer_id))
            del self.timers[timer.timer_id]
            self.now = max(self.now, timer.due_at)
            self._fire(timer)
        self.now = max(self.now, moment)

    def run_for(self, span: timedelta) -> None:
        self.advance_to(self.now + span)

    # -- results ------------------------------------------------------------------------
    def of(self, profile_id: str) -> list[Instance]:
        return [i for i in self.instances.values() if i.profile_id == profile_id]

    def sent(self, profile_id: str | None = None) -> list[Dispatch]:
        return [d for d in self.dispatches if profile_id is None or d.profile_id == profile_id]

    # -- internals ----------------------------------------------------------------------
    def _pid(self, event: dict[str, Any]) -> str:
        for key in ("userId", "anonymousId"):
            for pid, p in self.profiles.items():
                if event.get(key) and event.get(key) in (p.user_id, p.anonymous_id, pid):
                    return pid
        if len(self.profiles) == 1:
            return next(iter(self.profiles))
        raise KeyError(f"no profile for event {event.get('messageId')}")

    def _enter(self, pid: str, key: str, trigger: dict[str, Any]) -> None:
        journey = self.cj.journey
        facts = self.facts.setdefault(pid, CustomerFacts())
        facts.active = {journey.id: sum(1 for i in self.of(pid) if i.active)}
        why = refusal(journey, facts, self.now)
        if why:
            self._say(pid, f"not entered: {why}")
            return
        ek = entry_key(journey, key)
        iid = instance_id(journey.id, journey.version, pid, ek)
        if iid in self.instances:
            return
        inst = Instance(iid, journey.id, journey.version, pid, ek, self.now, trigger)
        admit(facts, journey, self.now)
        self.instances[iid] = inst
        self._apply(lambda fx: self.engine.enter(self.cj, inst, self.profiles[pid], self.now, fx))

    def _fire(self, timer: Timer) -> None:
        if timer.kind == "step" and timer.instance_id in self.instances:
            inst = self.instances[timer.instance_id]
            self._apply(
                lambda fx: self.engine.on_timer(
                    self.cj,
                    inst,
                    timer.token or "",
                    timer.due_at,
                    self.profiles[inst.profile_id],
                    self.now,
                    fx,
                )
            )
        elif timer.kind == "date" and timer.profile_id:
            self._enter(timer.profile_id, f"date:{timer.token}", {"type": "date", "properties": {}})
            self._plan_date(self.profiles[timer.profile_id], after=self.now + timedelta(days=1))
        elif timer.kind == "schedule":
            trigger = self.cj.journey.trigger
            assert isinstance(trigger, ScheduleTrigger)
            for pid, facts in self.facts.items():
                if trigger.segment in facts.segments:
                    self._enter(
                        pid, f"schedule:{timer.token}", {"type": "schedule", "properties": {}}
                    )
            self._plan_schedule(force=True)

    def _apply(self, move: Any) -> None:
        fx = Effects()
        before = {i: len(x.history) for i, x in self.instances.items()}
        move(fx)
        for inst in self.instances.values():
            for line in inst.history[before.get(inst.instance_id, 0) :]:
                self._say(inst.profile_id, f"[{line['step'] or 'journey'}] {line['what']}")
        for timer_id in fx.cancelled:
            self.timers.pop(timer_id, None)
        for timer in fx.timers:
            self.timers[timer.timer_id] = timer
        self.dispatches += fx.dispatches
        self.identifies += fx.identifies
        self.webhooks += fx.webhooks
        self.counters.update(fx.counters)

    def _plan_date(self, profile: ProfileSnapshot, after: datetime | None = None) -> None:
        trigger = self.cj.journey.trigger
        if not isinstance(trigger, DateTrigger):
            return
        snapshot = profile.model_dump(mode="json")
        day = timing.trait_date(snapshot, trigger.date_attribute)
        if day is None:
            return
        due = timing.next_occurrence(
            day,
            trigger.offset_days,
            trigger.at,
            customer_zone(snapshot),
            after or self.now,
            trigger.yearly,
        )
        if due is not None:
            tid = f"date:{profile.profile_id}"
            self.timers[tid] = Timer(
                tid,
                "date",
                due,
                self.cj.journey.id,
                profile_id=profile.profile_id,
                token=due.date().isoformat(),
            )

    def _plan_schedule(self, force: bool = False) -> None:
        trigger = self.cj.journey.trigger
        if isinstance(trigger, ScheduleTrigger) and (force or "schedule" not in self.timers):
            due = timing.next_cron(trigger.schedule, self.now, trigger.timezone)
            self.timers["schedule"] = Timer(
                "schedule", "schedule", due, self.cj.journey.id, token=due.isoformat()
            )

    def _say(self, profile_id: str, text: str) -> None:
        self.trace.append((self.now, profile_id, text))
