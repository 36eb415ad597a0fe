"""Feedback use cases, in the caller's transaction: opens, clicks, one-click unsubscribes and
provider delivery reports become rows and, the first time, lifecycle events on `jm.events`."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import lifecycle, repository
from shared.kafka import OutRecord

KINDS = {
    "delivered": lifecycle.DELIVERED, "opened": lifecycle.OPENED,
    "clicked": lifecycle.CLICKED, "unsubscribed": lifecycle.UNSUBSCRIBED,
    "bounced": lifecycle.BOUNCED, "failed": lifecycle.FAILED,
}  # fmt: skip


class UnknownMessage(LookupError):
    """No send attempt with that id."""


async def engagement(
    conn: AsyncConnection, dispatch_id: str, kind: str, at: datetime, *, url: str = "",
    extra: dict[str, Any] | None = None,
) -> list[OutRecord]:  # fmt: skip
    """Count `kind` for a message; its lifecycle event the first time (per URL for clicks)."""
    attempt = await repository.attempt(conn, dispatch_id)
    if attempt is None:
        raise UnknownMessage(dispatch_id)
    if not await repository.add_message_event(conn, attempt, kind, url, at):
        return []
    contacts = await repository.contacts_of(conn, [attempt["profile_id"]])
    props = {**({"url": url} if url else {}), **(extra or {})}
    return [
        lifecycle.message_event(
            KINDS[kind],
            attempt,
            contacts.get(attempt["profile_id"], {}),
            at,
            extra=props,
            discriminator=url,
        )
    ]


async def unsubscribe(conn: AsyncConnection, link: dict[str, Any], at: datetime) -> list[OutRecord]:
    """One-click unsubscribe from the message's type on its channel: honoured at once here (an
    opt-out row the policy reads), and told to the profile service as an identify it applies
    with its own consent rules, plus `Message Unsubscribed`."""
    profile_id, channel = str(link["profile_id"]), str(link.get("channel") or "email")
    # A link in a transactional message (an order confirmation) stops the promotional mail:
    # no link ever stops the messages a customer needs.
    message_type = str(link.get("message_type") or "marketing")
    if message_type in ("transactional", "all"):
        message_type = "marketing"
    await repository.add_optout(conn, profile_id, channel, message_type, at)
    contacts = await repository.contacts_of(conn, [profile_id])
    profile = contacts.get(profile_id, {})
    dispatch_id = str(link.get("dispatch_id") or "")
    records = [
        lifecycle.consent_refusal(
            profile, profile_id, channel, message_type, dispatch_id=dispatch_id, at=at
        )
    ]
    if dispatch_id:
        with contextlib.suppress(UnknownMessage):  # an erased customer: the opt-out still holds
            records += await engagement(conn, dispatch_id, "unsubscribed", at)
    return records


async def delivery_report(
    conn: AsyncConnection, *, dispatch_id: str | None, provider_id: str | None, status: str,
    reason: str | None, at: datetime, hard_bounce_suppresses: bool = True,
) -> list[OutRecord]:  # fmt: skip
    """A provider's report (delivered, bounced, failed). A hard bounce puts the address on the
    suppression list, so it is never tried again."""
    attempt = (
        await repository.attempt(conn, dispatch_id)
        if dispatch_id
        else await repository.attempt_by_provider_id(conn, provider_id or "")
    )
    if attempt is None:
        raise UnknownMessage(dispatch_id or provider_id or "")
    if status == "bounced" and hard_bounce_suppresses and attempt.get("address"):
        await repository.add_suppression(
            conn, attempt["channel"], attempt["address"], f"bounced: {reason or 'no reason'}"
        )
    extra = {"reason": reason} if reason else {}
    return await engagement(conn, attempt["dispatch_id"], status, at, extra=extra)
