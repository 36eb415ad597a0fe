"""Use cases of the channels service.

A send goes in three steps so it can never happen twice: (1) in one transaction, claim the
dispatch id (a redelivered request finds it taken), read current consent and decide, and commit
the attempt as `sending`; (2) call the provider, outside any transaction; (3) record the outcome
and queue the `Message Sent` / `Message Failed` events. A crash between (1) and (3) leaves the
attempt `sending`; the sweeper later marks it `unknown` and it is never retried blindly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import repository
from services.channels.policy import decide
from services.channels.providers.email import PermanentSendError, SmtpProvider, TransientSendError
from services.channels.templates import TemplateError, Templates, template_variables
from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.contracts import DispatchRequest
from shared.kafka import OutRecord
from shared.topics import EVENTS

log = logging.getLogger(__name__)
SOURCE = "journeyman/channels"


@dataclass(frozen=True)
class Claimed:
    request: DispatchRequest
    profile: dict[str, Any]
    address: str


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    status: str
    reason: str | None
    tries: int
    provider_id: str | None = None


async def remember_profiles(conn: AsyncConnection, snapshots: Sequence[dict[str, Any]]) -> None:
    await repository.upsert_contacts(conn, snapshots)


async def claim(conn: AsyncConnection, requests: Sequence[DispatchRequest]) -> list[Claimed]:
    """Step 1: claim new dispatch ids, apply the policy, commit `sending` or `suppressed`."""
    carried = [r.profile.model_dump(mode="json") for r in requests if r.profile is not None]
    await repository.upsert_contacts(conn, carried)
    unique = list({r.dispatch_id: r for r in requests}.values())
    fresh = await repository.claim_attempts(
        conn,
        [
            {
                "dispatch_id": r.dispatch_id, "profile_id": r.profile_id, "channel": r.channel,
                "message_type": r.message_type, "template": r.template,
                "journey_id": r.journey_id, "step_id": r.step_id, "status": "sending",
                "request": r.model_dump(mode="json", exclude={"profile"}),
            }
            for r in unique
        ],
    )  # fmt: skip
    todo = [r for r in unique if r.dispatch_id in fresh]
    profiles = await repository.contacts_of(conn, (r.profile_id for r in todo))
    claimed: list[Claimed] = []
    decisions = []
    for request in todo:
        profile = profiles.get(request.profile_id, {})
        decision = decide(profile, request.channel, request.message_type)
        if decision.send and decision.address:
            claimed.append(Claimed(request, profile, decision.address))
        else:
            decisions.append(
                {"dispatch_id": request.dispatch_id, "status": "suppressed",
                 "reason": decision.reason, "address": decision.address}
            )  # fmt: skip
    await repository.finish_attempts(conn, decisions)
    return claimed


async def deliver(
    claimed: Sequence[Claimed], templates: Templates, email: SmtpProvider, concurrency: int = 16
) -> list[Outcome]:
    """Step 2: render and send, a few at a time, retrying transient failures."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Claimed) -> Outcome:
        async with gate:
            return await _deliver_one(item, templates, email)

    return list(await asyncio.gather(*(one(c) for c in claimed)))


async def _deliver_one(item: Claimed, templates: Templates, email: SmtpProvider) -> Outcome:
    request = item.request
    if request.channel != "email":
        return Outcome(item, "failed", f"channel {request.channel} has no provider yet", 0)
    try:
        rendered = templates.render_email(
            request.template, template_variables(item.profile, request.data)
        )
    except TemplateError as exc:
        return Outcome(item, "failed", str(exc), 0)
    delay = 0.5
    for attempt in range(1, 5):
        try:
            provider_id = await email.send(item.address, rendered, request.dispatch_id)
            return Outcome(item, "sent", None, attempt, provider_id)
        except PermanentSendError as exc:
            return Outcome(item, "failed", str(exc), attempt)
        except TransientSendError as exc:
            log.warning(
                "transient send failure",
                extra={"dispatch_id": request.dispatch_id, "error": str(exc)},
            )
            if attempt == 4:
                return Outcome(item, "failed", f"gave up after {attempt} tries: {exc}", attempt)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def record(conn: AsyncConnection, outcomes: Sequence[Outcome]) -> list[OutRecord]:
    """Step 3: store outcomes; return the lifecycle events for `jm.events`."""
    await repository.finish_attempts(
        conn,
        [
            {"dispatch_id": o.claimed.request.dispatch_id, "status": o.status,
             "reason": o.reason, "address": o.claimed.address, "tries": o.tries}
            for o in outcomes
        ],
    )  # fmt: skip
    return [_lifecycle_event(o) for o in outcomes]


def _lifecycle_event(outcome: Outcome) -> OutRecord:
    request = outcome.claimed.request
    profile = outcome.claimed.profile
    name = "Message Sent" if outcome.status == "sent" else "Message Failed"
    now = datetime.now(UTC)
    message = {
        "type": "track",
        "event": name,
        "messageId": f"{name.split()[1].lower()}:{request.dispatch_id}",
        "timestamp": now.isoformat(),
        "properties": {
            "dispatch_id": request.dispatch_id, "channel": request.channel,
            "message_type": request.message_type, "template": request.template,
            "journey_id": request.journey_id, "step_id": request.step_id,
            "provider_message_id": outcome.provider_id, "reason": outcome.reason,
        },
        "context": {"journeyman": {"profile_id": request.profile_id}},
    }  # fmt: skip
    if profile.get("user_id"):
        message["userId"] = profile["user_id"]
    else:
        message["anonymousId"] = profile.get("anonymous_id") or request.profile_id
    key = (
        f"user:{profile['user_id']}" if profile.get("user_id") else f"anon:{message['anonymousId']}"
    )
    return OutRecord(
        EVENTS,
        dumps(message),
        key.encode(),
        binary_headers(
            event_id=str(message["messageId"]), event_type="segment.track", source=SOURCE, time=now
        ),
    )
