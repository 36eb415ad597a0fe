"""The working set of one transaction: the instances a batch touches, the entry facts of its
customers, and the effects the engine asked for, written back in one statement (concurrent
batches take row locks in one order)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.journey import repository, webhooks_repository
from services.journey.compiled import CompiledJourney
from services.journey.engine import Engine, instance_id
from services.journey.entry import CustomerFacts, admit, entry_key, refusal
from services.journey.registry import Registry
from services.journey.state import Effects, Instance, Timer
from shared.cloudevents import binary_headers, child_traceparent
from shared.codec import dumps
from shared.contracts import ProfileSnapshot
from shared.kafka import OutRecord
from shared.topics import DISPATCH, EVENTS

log = logging.getLogger(__name__)
SOURCE = "journeyman/journey"
DISPATCH_TYPE = "journeyman.dispatch"


class Work:
    def __init__(self, registry: Registry, engine: Engine, now: datetime) -> None:
        self.registry = registry
        self.engine = engine
        self.now = now
        self.fx = Effects()
        self.instances: dict[str, Instance] = {}
        self.by_profile: dict[str, list[Instance]] = {}
        self.facts: dict[str, CustomerFacts] = {}
        self.changed: set[str] = set()
        self.created: set[str] = set()
        self.entries: list[tuple[str, str, datetime]] = []
        self.traceparents: dict[str, str | None] = {}

    # -- loading ------------------------------------------------------------------------
    def hold(self, loaded: Iterable[Instance]) -> None:
        for inst in loaded:
            self.instances[inst.instance_id] = inst
            self.by_profile.setdefault(inst.profile_id, []).append(inst)

    async def load_facts(self, conn: AsyncConnection, profile_ids: set[str]) -> None:
        """Entry facts of these customers (their live instances must be held already)."""
        wanted = profile_ids - self.facts.keys()
        if not wanted:
            return
        last = await repository.last_entries(conn, wanted)
        audiences = any(c.journey.entry.audience for c in self.registry.enterable())
        segments = await repository.segments_of(conn, wanted) if audiences else {}
        for pid in wanted:
            facts = CustomerFacts(segments=segments.get(pid, set()), last_entry=last.get(pid, {}))
            for inst in self.by_profile.get(pid, []):
                if inst.active:
                    facts.active[inst.journey_id] = facts.active.get(inst.journey_id, 0) + 1
            self.facts[pid] = facts

    # -- moving -------------------------------------------------------------------------
    def live(self, profile_id: str) -> list[Instance]:
        return self.by_profile.get(profile_id, [])

    def compiled(self, inst: Instance) -> CompiledJourney | None:
        """The instance's own version, if its journey is running (not paused or archived)."""
        if not self.registry.running(inst.journey_id):
            return None
        return self.registry.get(inst.journey_id, inst.version)

    def held(self, inst: Instance) -> CompiledJourney | None:
        """The instance's version when its journey is paused (events only for goals, exits
        and remembered waits)."""
        if self.registry.status.get(inst.journey_id) != "paused":
            return None
        return self.registry.get(inst.journey_id, inst.version)

    def touch(self, inst: Instance) -> None:
        self.changed.add(inst.instance_id)

    def try_enter(
        self,
        cj: CompiledJourney,
        profile: ProfileSnapshot,
        key: str,
        trigger: dict[str, Any],
        traceparent: str | None = None,
    ) -> Instance | None:
        """Start an instance if the entry rules let the customer in."""
        journey, pid = cj.journey, profile.profile_id
        facts = self.facts.setdefault(pid, CustomerFacts())
        if refusal(journey, facts, self.now) is not None:
            return None
        ek = entry_key(journey, key)
        iid = instance_id(journey.id, journey.version, pid, ek)
        if iid in self.instances:
            return None
        inst = Instance(iid, journey.id, journey.version, pid, ek, self.now, trigger)
        admit(facts, journey, self.now)
        self.entries.append((journey.id, pid, self.now))
        self.hold([inst])
        self.created.add(iid)
        self.traceparents[iid] = traceparent
        self.engine.enter(cj, inst, profile, self.now, self.fx)
        if not inst.active:  # done at once (no wait): it no longer counts as running
            facts.active[journey.id] -= 1
        return inst

    # -- writing ------------------------------------------------------------------------
    async def flush(
        self,
        conn: AsyncConnection,
        timers: Sequence[Timer] = (),
        *,
        cancelled: Sequence[str] = (),
        profiles: Sequence[ProfileSnapshot] = (),
    ) -> list[OutRecord]:
        """Write everything back in one statement; return the records for the outbox.
        `timers` are more to schedule (the batch's date triggers, timers fired and planned
        again), `cancelled` more to delete, `profiles` snapshots to keep."""
        fx = self.fx
        planned = [*fx.timers, *timers]
        scheduled = {t.timer_id for t in planned}
        gone = [t for t in (*fx.cancelled, *cancelled) if t not in scheduled]
        touched = [self.instances[i] for i in sorted(self.changed | self.created)]
        await webhooks_repository.queue(conn, fx.webhooks)
        writes = repository.Writes(
            cancelled=gone, timers=planned, instances=touched, new=self.created,
            entries=self.entries, counters=fx.counters, profiles=profiles, encode=fx.json,
        )  # fmt: skip
        await repository.write(conn, writes, self.now)
        return self.records()

    def records(self) -> list[OutRecord]:
        out = []
        dispatches = self.fx.dispatches
        headers = _DispatchHeaders(self.now)
        text = self.fx.json
        for request in dispatches:
            instance_id = request.data.get("journey", {}).get("instance_id", "")
            traceparent = child_traceparent(self.traceparents.get(instance_id))
            out.append(
                OutRecord(
                    DISPATCH,
                    request.json(text),
                    request.profile_id.encode(),
                    headers.of(request.dispatch_id, request.profile_id, traceparent),
                )
            )
        for message in self.fx.identifies:
            key = message.get("userId") or message.get("anonymousId")
            out.append(
                OutRecord(
                    EVENTS,
                    dumps(message),
                    str(key).encode(),
                    binary_headers(
                        event_id=message["messageId"],
                        event_type="segment.identify",
                        source=SOURCE,
                        time=self.now,
                        subject=str(key),
                        traceparent=child_traceparent(None),
                    ),
                )
            )
        return out


class _DispatchHeaders:
    """`binary_headers` of the batch's dispatches: all share type, source and time, so the
    headers are built once and each record gets a copy with its id, subject and trace."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.base = binary_headers(
            event_id="-", event_type=DISPATCH_TYPE, source=SOURCE, time=now, subject="-",
            traceparent="-",
        )  # fmt: skip
        names = [k for k, _ in self.base]
        self.slots = names.index("ce_id"), names.index("ce_subject"), names.index("traceparent")

    def of(self, event_id: str, subject: str, traceparent: str) -> list[tuple[str, bytes]]:
        if not subject:  # binary_headers leaves ce_subject out then
            return binary_headers(
                event_id=event_id, event_type=DISPATCH_TYPE, source=SOURCE, time=self.now,
                traceparent=traceparent,
            )  # fmt: skip
        headers = self.base.copy()
        at_id, at_subject, at_trace = self.slots
        headers[at_id] = ("ce_id", event_id.encode())
        headers[at_subject] = ("ce_subject", subject.encode())
        headers[at_trace] = ("traceparent", traceparent.encode())
        return headers


def fresh_ids(records: Sequence[tuple[str, Any]], new: set[str]) -> list[Any]:
    """Records whose id was not seen before, each once."""
    out, taken = [], set()
    for key, item in records:
        if key in new and key not in taken:
            taken.add(key)
            out.append(item)
    return out
