"""Step 1 of a send, in the caller's transaction: read the policy's facts for the whole batch
(consent locked until commit, opt-outs, suppressions, sends the caps count), decide, and claim
the new dispatch ids with their decisions. Committing this transaction commits the `sending`
attempts, so consent and caps are checked in the very transaction that claims the send.

Deferred dispatches come back through `decide_due`, which re-reads the same facts when they are
due: an opt-out made while a message waited for the morning is honoured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import repository
from services.channels.metrics import DECISIONS, count
from services.channels.policy import Candidate, Facts, PolicyConfig, address_of, decide_batch
from shared.contracts import DispatchRequest


@dataclass(frozen=True)
class Claimed:
    """A dispatch the policy let through: its attempt is committed as `sending`."""

    request: DispatchRequest
    profile: dict[str, Any]
    address: str


def _attempt_row(r: DispatchRequest, decision: dict[str, Any]) -> dict[str, Any]:
    return {
        "dispatch_id": r.dispatch_id, "profile_id": r.profile_id, "channel": r.channel,
        "message_type": r.message_type, "template": r.template, "journey_id": r.journey_id,
        "step_id": r.step_id, "priority": r.priority,
        # JSON text from pydantic's own encoder: no dict built only to be encoded
        "request": r.model_dump_json(exclude={"profile"}),
        "status": repository.attempt_status(decision["decision"]), "reason": decision["reason"],
        "address": decision["address"],
    }  # fmt: skip


async def claim(
    conn: AsyncConnection, requests: Sequence[DispatchRequest], config: PolicyConfig,
    now: datetime,
) -> list[Claimed]:  # fmt: skip
    """New dispatches, decided and inserted with their decision in one statement; a
    redelivered dispatch id finds its attempt taken and does nothing.

    The decision comes first, so a redelivered dispatch in the batch was judged beside the
    others (a would-be send its caps counted). That is rare, and then the fresh ones are
    judged again without it and their attempts updated, as a deferred one is when due."""
    carried = [repository.contact_row(r.profile) for r in requests if r.profile is not None]
    await repository.upsert_contacts(conn, carried)
    unique = list({r.dispatch_id: r for r in requests}.values())
    judged = await _judge(conn, unique, config, now)
    fresh = await repository.claim_attempts(
        conn, [_attempt_row(r, d) for r, d in zip(unique, judged.rows, strict=True)], now
    )
    if len(fresh) == len(unique):
        await _store(conn, judged, now, claimed=True)
        return judged.claimed
    again = await _judge(conn, [r for r in unique if r.dispatch_id in fresh], config, now)
    await _store(conn, again, now)
    return again.claimed


async def decide_due(
    conn: AsyncConnection, config: PolicyConfig, now: datetime, limit: int = 2_000
) -> list[Claimed]:
    """Deferred dispatches now due, decided again against today's consent and caps."""
    requests = [
        DispatchRequest.model_validate(r) for r in await repository.due_deferrals(conn, now, limit)
    ]
    judged = await _judge(conn, requests, config, now)
    await _store(conn, judged, now)
    return judged.claimed


def _ignores_caps(request: DispatchRequest, exempt_journeys: frozenset[str]) -> bool:
    """Braze's "ignore frequency capping": per journey in settings, or per step in the
    dispatch's `data.overrides.ignore_frequency_caps`."""
    overrides = request.data.get("overrides")
    flagged = isinstance(overrides, dict) and overrides.get("ignore_frequency_caps") is True
    return flagged or request.journey_id in exempt_journeys


@dataclass
class Judged:
    """The policy's decisions on a batch, in its order, and the dispatches it lets through."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    claimed: list[Claimed] = field(default_factory=list)


async def _judge(
    conn: AsyncConnection, todo: Sequence[DispatchRequest], config: PolicyConfig, now: datetime
) -> Judged:
    """Read the facts of the batch (its customers' contacts locked until commit) and decide."""
    out = Judged()
    if not todo:
        return out
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
    for r in todo:
        d = decided[r.dispatch_id]
        out.rows.append(
            {"dispatch_id": r.dispatch_id, "profile_id": r.profile_id,
             "journey_id": r.journey_id, "step_id": r.step_id, "channel": r.channel,
             "message_type": r.message_type, "decision": d.outcome,
             "reason": d.reason, "address": d.address, "not_before": d.not_before}
        )  # fmt: skip
        if d.send and d.address:
            out.claimed.append(Claimed(r, dict(profiles.get(r.profile_id, {})), d.address))
    return out


async def _store(
    conn: AsyncConnection, judged: Judged, now: datetime, *, claimed: bool = False
) -> None:
    """Store the decisions (`claimed`: the attempts were inserted with them) and count them."""
    await repository.save_decisions(conn, judged.rows, now, claimed=claimed)
    count(DECISIONS, ((r["channel"], r["decision"], r["reason"]) for r in judged.rows))
