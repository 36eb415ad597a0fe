"""Step 1 of a send, in the caller's transaction: claim new dispatch ids, read the policy's
facts for the whole batch (consent locked until commit, opt-outs, suppressions, sends the caps
count), decide, and store every decision. Committing this transaction commits the `sending`
attempts, so consent and caps are checked in the very transaction that claims the send.

Deferred dispatches come back through `decide_due`, which re-reads the same facts when they are
due: an opt-out made while a message waited for the morning is honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import repository
from services.channels.metrics import DECISIONS
from services.channels.policy import Candidate, Facts, PolicyConfig, address_of, decide_batch
from shared.contracts import DispatchRequest


@dataclass(frozen=True)
class Claimed:
    """A dispatch the policy let through: its attempt is committed as `sending`."""

    request: DispatchRequest
    profile: dict[str, Any]
    address: str


def _attempt_row(r: DispatchRequest) -> dict[str, Any]:
    return {
        "dispatch_id": r.dispatch_id, "profile_id": r.profile_id, "channel": r.channel,
        "message_type": r.message_type, "template": r.template, "journey_id": r.journey_id,
        "step_id": r.step_id, "status": "sending", "priority": r.priority,
        "request": r.model_dump(mode="json", exclude={"profile"}),
    }  # fmt: skip


async def claim(
    conn: AsyncConnection, requests: Sequence[DispatchRequest], config: PolicyConfig,
    now: datetime,
) -> list[Claimed]:  # fmt: skip
    """New dispatches: a redelivered dispatch id finds its attempt taken and does nothing."""
    carried = [repository.contact_row(r.profile) for r in requests if r.profile is not None]
    await repository.upsert_contacts(conn, carried)
    unique = list({r.dispatch_id: r for r in requests}.values())
    fresh = await repository.claim_attempts(conn, [_attempt_row(r) for r in unique])
    todo = [r for r in unique if r.dispatch_id in fresh]
    return await _decide(conn, todo, config, now, were_deferred=False)


async def decide_due(
    conn: AsyncConnection, config: PolicyConfig, now: datetime, limit: int = 2_000
) -> list[Claimed]:
    """Deferred dispatches now due, decided again against today's consent and caps."""
    requests = [
        DispatchRequest.model_validate(r) for r in await repository.due_deferrals(conn, now, limit)
    ]
    return await _decide(conn, requests, config, now)


def _ignores_caps(request: DispatchRequest, exempt_journeys: frozenset[str]) -> bool:
    """Braze's "ignore frequency capping": per journey in settings, or per step in the
    dispatch's `data.overrides.ignore_frequency_caps`."""
    overrides = request.data.get("overrides")
    flagged = isinstance(overrides, dict) and overrides.get("ignore_frequency_caps") is True
    return flagged or request.journey_id in exempt_journeys


async def _decide(
    conn: AsyncConnection, todo: Sequence[DispatchRequest], config: PolicyConfig, now: datetime,
    *, were_deferred: bool = True,
) -> list[Claimed]:  # fmt: skip
    if not todo:
        return []
    ids = sorted({r.profile_id for r in todo})
    profiles = await repository.lock_contacts(conn, ids)
    addresses = {
        (r.channel, a) for r in todo if (a := address_of(profiles.get(r.profile_id, {}), r.channel))
    }
    facts = Facts(
        profiles=profiles,
        optouts=await repository.optouts_of(conn, ids),
        suppressed=await repository.suppressed_among(conn, addresses),
        sent=(
            await repository.sends_since(conn, ids, now - config.longest_window)
            if config.caps
            else {}
        ),
    )
    candidates = [
        Candidate(r.dispatch_id, r.profile_id, r.channel, r.message_type, r.priority,
                  r.requested_at, ignore_caps=_ignores_caps(r, config.cap_exempt_journeys))
        for r in todo
    ]  # fmt: skip
    decided = decide_batch(candidates, facts, config, now)
    rows, claimed = [], []
    for r in todo:
        d = decided[r.dispatch_id]
        status = {"send": "sending"}.get(d.outcome, d.outcome)
        rows.append(
            {"dispatch_id": r.dispatch_id, "profile_id": r.profile_id,
             "journey_id": r.journey_id, "step_id": r.step_id, "channel": r.channel,
             "message_type": r.message_type, "status": status, "reason": d.reason,
             "address": d.address, "not_before": d.not_before}
        )  # fmt: skip
        DECISIONS.labels(r.channel, d.outcome, d.reason).inc()
        if d.send and d.address:
            claimed.append(Claimed(r, dict(profiles.get(r.profile_id, {})), d.address))
    await repository.save_decisions(conn, rows, now, were_deferred=were_deferred)
    return claimed
