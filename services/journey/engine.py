"""Journey execution with no I/O: an instance plus an input (entry, event, segment change,
timer firing) at a given `now` becomes a new instance state plus effects (dispatches, timers,
profile updates, webhooks, counters).

Every id an effect carries is derived from the instance, the step and how many times the
instance has visited it, so redelivered input maps to the same ids, which the database and the
channels service refuse to act on twice. Waits are durable timers identified the same way; a
timer whose token no longer matches the instance's wait (it was resolved by an event) does
nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from services.journey import timing
from services.journey.compiled import CompiledJourney
from services.journey.dsl import (
    BranchStep,
    ExitStep,
    GotoStep,
    SendStep,
    SplitStep,
    UpdateProfileStep,
    WaitForEventStep,
    WaitStep,
    WebhookStep,
)
from services.journey.durations import parse_duration
from services.journey.state import Dispatch, Effects, Instance, Profile, Timer, WebhookCall
from shared.customer_time import customer_zone

_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4a8e-9d57-3b7c1b7f0a11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
MAX_STEPS_PER_MOVE = 200  # a guard beyond the goto guards: no input runs a journey forever
JOURNEY = ""  # the step name of journey-wide counters (entries, conversions by group)


def instance_id(journey_id: str, version: int, profile_id: str, entry_key: str) -> str:
    """`str(uuid.uuid5(_NAMESPACE, name))`, written out: the same id, without building a UUID
    object (a third of the cost, and every event that may start an instance pays it)."""
    name = f"{journey_id}|{version}|{profile_id}|{entry_key}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def effect_id(inst: Instance, step: str, visit: int) -> str:
    """Stable per (instance, step, visit); the first visit keeps the historical short form."""
    return f"{inst.instance_id}:{step}" if visit == 1 else f"{inst.instance_id}:{step}:{visit}"


def in_holdout(journey_id: str, profile_id: str, percent: float) -> bool:
    if percent <= 0:  # most journeys: no draw (a blake2b per entry) needed
        return False
    return timing.bucket("holdout", journey_id, profile_id) < percent * 100


class Engine:
    """Runs compiled journeys. `time_scale` shrinks every wait (the demo runs days in seconds)."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale

    # -- inputs -------------------------------------------------------------------------
    def enter(
        self,
        cj: CompiledJourney,
        inst: Instance,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        """Start a new instance (already decided to be allowed in by the entry rules)."""
        j = cj.journey
        window = cj.goal_window()
        inst.goal_until = now + self._scaled(window) if window else None
        if in_holdout(j.id, inst.profile_id, j.entry.holdout_percent):
            inst.group = "holdout"
        fx.count(inst, JOURNEY, "entered", inst.group)
        inst.note(now, None, f"entered ({inst.group})")
        if inst.group == "holdout":
            self._finish(inst, now, "completed", "holdout: measured, not messaged", fx)
            return
        self._run(cj, inst, cj.first_step, profile, now, fx)

    def on_event(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        event: dict[str, Any],
        profile: Profile,
        now: datetime,
        fx: Effects,
        held: bool = False,
    ) -> None:
        """An event of the customer: goal, then exit criteria, then a wait for it. While the
        journey is paused (`held`) goals and exits still apply (they send nothing) and an
        awaited event is remembered, so resuming takes the path the customer earned."""
        name = event.get("event")
        j = cj.journey
        variables = self._variables(cj, inst, profile, event, fx)
        if (
            j.goal
            and name == j.goal.event
            and inst.converted_at is None
            and inst.goal_until is not None
            and now <= inst.goal_until
            and cj.holds(j.goal.condition, variables)
        ):
            inst.converted_at = now
            fx.count(inst, JOURNEY, "converted", inst.group)
            for visited in inst.visits:
                fx.count(inst, visited, "converted")
            inst.note(now, inst.step, f"converted ({name})")
            if j.goal.exit and inst.active:
                self._finish(inst, now, "completed", "goal reached", fx)
        if not inst.active:
            return
        for criterion in j.exit_on:
            if (
                criterion.event == name
                and self._matches(inst, event, criterion.match)
                and cj.holds(criterion.condition, variables)
            ):
                self._finish(inst, now, "exited", f"exit criterion: {name}", fx)
                return
        waiting = inst.waiting
        if waiting and waiting.get("event") == name:
            step = cj.steps[waiting["step"]]
            assert isinstance(step, WaitForEventStep)
            if self._matches(inst, event, step.match) and cj.holds(step.condition, variables):
                inst.last_event = _slim(event)
                if held:  # paused journey: remembered, taken when the wait is next looked at
                    waiting["arrived"] = True
                    inst.note(now, step.id, f"{name} arrived while paused")
                    return
                fx.cancelled.append(waiting["timer_id"])
                inst.waiting = None
                inst.note(now, step.id, f"{name} arrived")
                fx.count(inst, step.id, "branch", "event")
                target = step.on_event or cj.following[step.id]
                self._continue(cj, inst, target, profile, now, fx)

    def on_segment(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        segment: str,
        change: str,
        now: datetime,
        fx: Effects,
    ) -> None:
        if not inst.active:
            return
        for criterion in cj.journey.exit_on:
            wanted = criterion.segment_exited if change == "exited" else criterion.segment_entered
            if wanted == segment:
                self._finish(inst, now, "exited", f"exit criterion: segment {change} {segment}", fx)
                return

    def on_timer(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        token: str,
        due: datetime,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        """A wait's deadline. A stale token (the wait was resolved meanwhile) does nothing."""
        waiting = inst.waiting
        if not inst.active or not waiting or waiting.get("token") != token:
            return
        late = max((now - due).total_seconds(), 0.0)
        fx.lateness_s.append(late)
        step = cj.steps[waiting["step"]]
        inst.waiting = None
        if isinstance(step, WaitForEventStep) and waiting.get("arrived"):
            inst.note(now, step.id, f"{step.event} had arrived (while paused)")
            fx.count(inst, step.id, "branch", "event")
            target = step.on_event or cj.following[step.id]
        elif isinstance(step, WaitForEventStep):
            inst.note(now, step.id, f"timed out waiting for {step.event}" + _late(late))
            fx.count(inst, step.id, "branch", "timeout")
            target = step.on_timeout or cj.following[step.id]
        else:
            inst.note(now, step.id, "wait over" + _late(late))
            target = step.next or cj.following[step.id]
        self._continue(cj, inst, target, profile, now, fx)

    def end(self, inst: Instance, now: datetime, reason: str, fx: Effects) -> None:
        """End an instance from outside the journey (archive, erasure)."""
        if inst.active:
            self._finish(inst, now, "exited", reason, fx)

    # -- execution ----------------------------------------------------------------------
    def _continue(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        target: str | None,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        if target is None:
            self._finish(inst, now, "completed", "reached the end", fx)
        else:
            self._run(cj, inst, target, profile, now, fx)

    def _run(  # noqa: PLR0912, PLR0917  (one branch per step type)
        self,
        cj: CompiledJourney,
        inst: Instance,
        start: str,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        current: str | None = start
        for _ in range(MAX_STEPS_PER_MOVE):
            if current is None:
                self._finish(inst, now, "completed", "reached the end", fx)
                return
            step = cj.steps[current]
            visit = inst.visits.get(step.id, 0) + 1
            inst.visits[step.id] = visit
            inst.step = step.id
            fx.count(inst, step.id, "entered")
            after = step.next or cj.following[step.id]
            if isinstance(step, SendStep):
                fx.dispatches.append(self._dispatch(cj, inst, step, visit, profile, now))
                inst.note(now, step.id, f"send {step.channel} {step.template}")
            elif isinstance(step, WaitStep | WaitForEventStep):
                self._wait(inst, step, visit, profile, now, fx)
                return
            elif isinstance(step, BranchStep):
                after = self._branch(cj, inst, step, profile, now, fx)
            elif isinstance(step, SplitStep):
                draw = timing.bucket("split", inst.instance_id, step.id, str(visit))
                total, chosen = sum(p.weight for p in step.paths), step.paths[-1]
                point, acc = draw * total / 10_000, 0
                for path in step.paths:
                    acc += path.weight
                    if point < acc:
                        chosen = path
                        break
                fx.count(inst, step.id, "branch", chosen.label)
                inst.note(now, step.id, f"split: {chosen.label}")
                after = chosen.next
            elif isinstance(step, UpdateProfileStep):
                self._identify(cj, inst, step, visit, profile, now, fx)
            elif isinstance(step, WebhookStep):
                fx.webhooks.append(self._webhook(cj, inst, step, visit, now))
                inst.note(now, step.id, f"webhook {step.method} {step.url}")
            elif isinstance(step, GotoStep):
                if visit <= step.max_loops:
                    inst.note(now, step.id, f"loop {visit} of {step.max_loops} to {step.target}")
                    fx.count(inst, step.id, "branch", "loop")
                    after = step.target
                else:
                    inst.note(now, step.id, "loop guard reached")
                    fx.count(inst, step.id, "branch", "done")
            elif isinstance(step, ExitStep):
                self._finish(inst, now, "exited", "exit step", fx)
                return
            current = after
        self._finish(inst, now, "exited", f"stopped after {MAX_STEPS_PER_MOVE} steps", fx)

    def _branch(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        step: BranchStep,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> str | None:
        variables = self._variables(cj, inst, profile, inst.last_event or inst.trigger, fx)
        for case in step.cases:
            if cj.holds(case.condition, variables):
                label = case.label or case.next
                fx.count(inst, step.id, "branch", label)
                inst.note(now, step.id, f"branch: {label}")
                return case.next
        fx.count(inst, step.id, "branch", "default")
        inst.note(now, step.id, "branch: default")
        return step.default or step.next or cj.following[step.id]

    def _wait(  # noqa: PLR0917
        self,
        inst: Instance,
        step: WaitStep | WaitForEventStep,
        visit: int,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        due = self._due(step, profile, now, fx)
        token = f"{step.id}:{visit}"
        timer_id = f"{inst.instance_id}:{token}"
        inst.waiting = {
            "step": step.id,
            "token": token,
            "timer_id": timer_id,
            "due": due.isoformat(),
        }
        if isinstance(step, WaitForEventStep):
            source = inst.trigger.get("properties") or {}
            inst.waiting["event"] = step.event
            inst.waiting["match"] = {k: source.get(k) for k in step.match}
            inst.note(now, step.id, f"waiting for {step.event} until {due.isoformat()}")
        else:
            inst.note(now, step.id, f"waiting until {due.isoformat()}")
        fx.timers.append(
            Timer(timer_id, "step", due, inst.journey_id, inst.instance_id, inst.profile_id, token)
        )

    def _due(
        self,
        step: WaitStep | WaitForEventStep,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> datetime:
        if isinstance(step, WaitForEventStep):
            return now + self._scaled(parse_duration(step.timeout))
        if step.duration:
            return now + self._scaled(parse_duration(step.duration))
        snapshot = fx.doc(profile)
        zone = customer_zone(snapshot)
        if step.until_time:
            target = timing.next_time_of_day(now, step.until_time, zone)
        else:
            assert step.until_date_attribute is not None
            day = timing.trait_date(snapshot, step.until_date_attribute)
            target = timing.on_date(day, step.offset_days, step.at, zone) if day else now
        return now + self._scaled(max(target - now, timedelta(0)))

    def _scaled(self, delta: timedelta) -> timedelta:
        return delta * self.time_scale if self.time_scale != 1.0 else delta

    def _matches(self, inst: Instance, event: dict[str, Any], keys: list[str]) -> bool:
        """The event's properties equal the triggering event's on every key."""
        if not keys:
            return True
        mine = inst.trigger.get("properties") or {}
        theirs = event.get("properties") or {}
        return all(k in mine and theirs.get(k) == mine[k] for k in keys)

    def _finish(self, inst: Instance, now: datetime, status: str, reason: str, fx: Effects) -> None:
        if inst.waiting:
            fx.cancelled.append(inst.waiting["timer_id"])
            inst.waiting = None
        inst.status, inst.reason, inst.ended_at = status, reason, now
        if status == "exited":
            fx.count(inst, inst.step or JOURNEY, "exited")
        inst.note(now, inst.step, f"{status}: {reason}")

    # -- effects ------------------------------------------------------------------------
    def _variables(
        self,
        cj: CompiledJourney,
        inst: Instance,
        profile: Profile,
        event: dict[str, Any],
        fx: Effects,
    ) -> dict[str, Any]:
        return {
            "profile": fx.doc(profile),
            "event": event,
            "journey": {
                "id": cj.journey.id,
                "name": cj.journey.name,
                "step_id": inst.step or "",
                "trigger": inst.trigger,
                "group": inst.group,
            },
        }

    def _dispatch(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        step: SendStep,
        visit: int,
        profile: Profile,
        now: datetime,
    ) -> Dispatch:
        data: dict[str, Any] = {
            "event": inst.trigger,
            "journey": {
                "id": cj.journey.id,
                "name": cj.journey.name,
                "step_id": step.id,
                "instance_id": inst.instance_id,
            },
        }
        if inst.last_event:
            data["last_event"] = inst.last_event
        if step.overrides:
            data["overrides"] = step.overrides
        if step.survey:
            data["survey"] = step.survey
        return Dispatch(
            effect_id(inst, step.id, visit),
            inst.profile_id,
            step.channel,
            step.message_type,
            step.template,
            cj.journey.id,
            cj.journey.version,
            step.id,
            cj.journey.priority,
            data,
            profile,
            now,
        )

    def _identify(  # noqa: PLR0917
        self,
        cj: CompiledJourney,
        inst: Instance,
        step: UpdateProfileStep,
        visit: int,
        profile: Profile,
        now: datetime,
        fx: Effects,
    ) -> None:
        who = {"userId": profile.user_id} if profile.user_id else {}
        if not who and profile.anonymous_id:
            who = {"anonymousId": profile.anonymous_id}
        if not who:
            inst.note(now, step.id, "profile update skipped: customer has no user or anonymous id")
            return
        fx.identifies.append(
            {
                "type": "identify",
                "messageId": f"jm-journey:{effect_id(inst, step.id, visit)}",
                **who,
                "traits": dict(step.traits),
                "timestamp": now.isoformat(),
                "context": {
                    "journeyman": {
                        "profile_id": inst.profile_id,
                        "journey_id": cj.journey.id,
                        "step_id": step.id,
                    }
                },
            }
        )
        inst.note(now, step.id, f"update profile: {', '.join(step.traits)}")

    def _webhook(
        self, cj: CompiledJourney, inst: Instance, step: WebhookStep, visit: int, now: datetime
    ) -> WebhookCall:
        body = (
            step.body
            if step.body is not None
            else {
                "profile_id": inst.profile_id,
                "journey_id": cj.journey.id,
                "step_id": step.id,
                "instance_id": inst.instance_id,
                "event": inst.trigger,
                "at": now.isoformat(),
            }
        )
        return WebhookCall(
            effect_id(inst, step.id, visit),
            inst.instance_id,
            cj.journey.id,
            step.id,
            step.method,
            step.url,
            dict(step.headers),
            body,
        )


def _slim(event: dict[str, Any]) -> dict[str, Any]:
    """What an instance keeps of an event: enough for conditions and templates."""
    keep = ("type", "event", "messageId", "timestamp", "properties", "userId", "anonymousId")
    return {k: event[k] for k in keep if k in event}


def slim(event: dict[str, Any]) -> dict[str, Any]:
    return _slim(event)


def _late(seconds: float) -> str:
    return f" ({seconds:.1f}s late)" if seconds >= 1 else ""
