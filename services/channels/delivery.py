"""Step 2 and 3 of a send: render and call the provider (outside any transaction), then
store the outcome and queue `Message Sent` / `Message Failed` in the caller's transaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import lifecycle, repository
from services.channels.deciding import Claimed
from services.channels.links import LinkMaker
from services.channels.providers.base import Message
from services.channels.providers.sender import RateLimitedProvider
from services.channels.templates import TemplateError, Templates, template_variables
from shared.kafka import OutRecord


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    status: str  # sent | failed
    reason: str | None
    tries: int
    provider_id: str | None = None


@dataclass(frozen=True)
class Tracking:
    opens: bool = True
    clicks: bool = True


class Delivery:
    def __init__(
        self, templates: Templates, providers: Mapping[str, RateLimitedProvider],
        links: LinkMaker, tracking: Tracking = Tracking(), concurrency: int = 64,
    ) -> None:  # fmt: skip
        self.templates = templates
        self.providers = providers
        self.links = links
        self.tracking = tracking
        self._gate = asyncio.Semaphore(concurrency)

    def compose(self, item: Claimed) -> Message:
        """The message as the customer will get it; TemplateError if it cannot be rendered."""
        r = item.request
        survey = r.data.get("survey")
        links = self.links.for_message(
            r.profile_id, r.dispatch_id, channel=r.channel, message_type=r.message_type,
            journey_id=r.journey_id, step_id=r.step_id,
            survey=survey if isinstance(survey, str) else None,
        )  # fmt: skip
        journey = {**(r.data.get("journey") or {}), "step_id": r.step_id}
        journey.setdefault("id", r.journey_id)
        variables = template_variables(
            item.profile, {**r.data, "journey": journey}, links,
            {"dispatch_id": r.dispatch_id, "channel": r.channel, "type": r.message_type},
        )  # fmt: skip
        rendered = self.templates.render(r.template, r.channel, variables)
        parts = dict(rendered.parts)
        headers: dict[str, str] = {}
        if r.channel == "email":
            parts["html"] = self.links.track(
                parts["html"], r.dispatch_id, self.tracking.opens, self.tracking.clicks
            )
            headers = {
                "List-Unsubscribe": f"<{links['unsubscribe']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        elif r.channel == "webhook":
            parts["webhook"] = _webhook_body(parts["webhook"], item)
        extra = r.data.get("push_data")  # FCM data values are strings
        data = {
            "journey_id": r.journey_id, "step_id": r.step_id,
            **({str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {}),
        }  # fmt: skip
        return Message(r.dispatch_id, r.channel, item.address, parts, headers, data)

    async def deliver(self, claimed: Sequence[Claimed]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._one(c) for c in claimed)))

    async def _one(self, item: Claimed) -> Outcome:
        provider = self.providers.get(item.request.channel)
        if provider is None:
            return Outcome(item, "failed", f"no provider for {item.request.channel}", 0)
        try:
            message = self.compose(item)
        except TemplateError as exc:
            return Outcome(item, "failed", str(exc), 0)
        async with self._gate:
            result = await provider.send(message)
        return Outcome(item, result.status, result.reason, result.tries, result.provider_id)


def _webhook_body(rendered: str, item: Claimed) -> str:
    """The template's JSON, checked; an empty template sends the default document."""
    if rendered.strip():
        try:
            json.loads(rendered)
        except ValueError as exc:
            raise TemplateError(
                f"template {item.request.template}/webhook: not JSON: {exc}"
            ) from exc
        return rendered
    r = item.request
    return json.dumps({
        "dispatch_id": r.dispatch_id, "profile_id": r.profile_id, "journey_id": r.journey_id,
        "step_id": r.step_id, "message_type": r.message_type, "event": r.data.get("event"),
    })  # fmt: skip


async def record(
    conn: AsyncConnection, outcomes: Sequence[Outcome], now: datetime
) -> list[OutRecord]:
    """Step 3: store outcomes and log them; return the lifecycle events for `jm.events`.

    An `unknown` outcome (handed over, no answer) keeps its attempt `sending`, exactly as a
    crash at that moment would: the sweeper then reports it and retries it only for the types
    configured for it, so the message is never sent twice blindly."""
    known = [o for o in outcomes if o.status != "unknown"]
    await repository.finish_attempts(
        conn,
        [{"dispatch_id": o.claimed.request.dispatch_id, "status": o.status,
          "reason": o.reason, "address": o.claimed.address, "tries": o.tries,
          "provider_message_id": o.provider_id} for o in known],
    )  # fmt: skip
    await repository.log_decisions(
        conn,
        [{**_fields(o.claimed), "decision": o.status,
          "reason": o.reason or f"accepted by the provider ({o.provider_id})"}
         for o in outcomes],
        now,
    )  # fmt: skip
    return [_event(o, now) for o in known]


def _fields(item: Claimed) -> dict[str, Any]:
    r = item.request
    return {
        "dispatch_id": r.dispatch_id, "profile_id": r.profile_id, "channel": r.channel,
        "message_type": r.message_type, "template": r.template, "journey_id": r.journey_id,
        "step_id": r.step_id,
    }  # fmt: skip


def _event(o: Outcome, now: datetime) -> OutRecord:
    name = lifecycle.SENT if o.status == "sent" else lifecycle.FAILED
    extra = {"provider_message_id": o.provider_id, "reason": o.reason}
    return lifecycle.message_event(name, _fields(o.claimed), o.claimed.profile, now, extra=extra)
