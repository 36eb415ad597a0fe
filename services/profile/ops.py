"""Use cases behind the ops API and the customer links: change consent, export and erase a
customer. Each runs in the caller's transaction, locks the profile like the consumer does (so
it never races an event), and returns the records for the outbox; none commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile import consent as consent_rules
from services.profile import repository
from services.profile.behaviour import UNSUBSCRIBED, ProfileState, set_traits, stamp_of
from services.profile.consent import ConsentChange
from services.profile.publish import (
    CONSENT_CHANGED,
    erased_records,
    lifecycle_event,
    profile_event,
    profile_record,
    snapshot,
)
from services.profile.service import history_rows, timeline_row
from shared.codec import dumps
from shared.kafka import OutRecord


class ProfileNotFound(LookupError):
    """No live profile answers to this identifier."""


@dataclass(frozen=True)
class ConsentRequest:
    """What a consent change asks for; `unsubscribe_channel` refuses every non-transactional
    type of that channel (what an unsubscribe link does)."""

    update: dict[str, dict[str, bool]]
    source: str
    unsubscribed: bool | None = None
    unsubscribe_channel: str | None = None


@dataclass
class ConsentResult:
    state: ProfileState
    changes: list[ConsentChange]
    records: list[OutRecord]


async def _locked(conn: AsyncConnection, identifier: str) -> ProfileState:
    profile_id = await repository.find_profile_id(conn, identifier)
    state = None if profile_id is None else await repository.lock_profile(conn, profile_id)
    if state is None:
        raise ProfileNotFound(identifier)
    return state


async def change_consent(
    conn: AsyncConnection, identifier: str, request: ConsentRequest, now: datetime
) -> ConsentResult:
    """Apply a consent change; when anything changed, bump the version, keep the history,
    append `Consent Changed` to the timeline and publish it with the new profile."""
    state = await _locked(conn, identifier)
    stamp = stamp_of(now)
    changes = consent_rules.apply_update(state.consent, request.update, request.source, stamp)
    if request.unsubscribe_channel:
        changes += consent_rules.unsubscribe_all(
            state.consent, request.unsubscribe_channel, request.source, stamp
        )
    if request.unsubscribed is not None and bool(state.traits.get(UNSUBSCRIBED)) is not (
        request.unsubscribed
    ):
        set_traits(state, {UNSUBSCRIBED: request.unsubscribed}, stamp)
        all_ = consent_rules.ALL
        changes.append(ConsentChange(all_, all_, not request.unsubscribed, request.source, stamp))
    if not changes:
        return ConsentResult(state, [], [])
    state.version += 1
    if state.updated_at is None or now > state.updated_at:
        state.updated_at = now
    wire = lifecycle_event(
        CONSENT_CHANGED,
        f"consent-{uuid.uuid4()}",
        state,
        {"source": request.source, "changes": [c.as_dict() for c in changes]},
        now,
    )
    await repository.save_profiles(conn, [state])
    await repository.add_consent_history(conn, history_rows(state.profile_id, changes))
    await repository.append_timeline(
        conn, [timeline_row(state.profile_id, wire, dumps(wire).decode())]
    )
    records = [profile_event(wire, state, now, None), profile_record(state)]
    return ConsentResult(state, changes, records)


async def export(conn: AsyncConnection, identifier: str) -> dict[str, Any]:
    """Everything held about a customer (GDPR art. 15/20), as JSON-ready data."""
    profile_id = await repository.find_profile_id(conn, identifier)
    state = None if profile_id is None else await repository.get_profile(conn, profile_id)
    if state is None:
        raise ProfileNotFound(identifier)
    timeline = await repository.get_timeline(
        conn, state.profile_id, since=None, until=None, types=(), events=(), after=None,
        limit=1_000_000,
    )  # fmt: skip
    return {
        # `internal` too: visit days and change times are data held about the customer.
        "profile": {**snapshot(state), "created_at": state.created_at, "internal": state.internal},
        "identities": await repository.identities_of_profile(conn, state.profile_id),
        "merged_profile_ids": await repository.merged_ids(conn, state.profile_id),
        "consent_history": await repository.consent_history(conn, state.profile_id),
        "timeline": timeline,
    }


async def erase(conn: AsyncConnection, identifier: str, now: datetime) -> list[OutRecord]:
    """Erase a customer (GDPR art. 17): profile, timeline, identities, consent history and the
    ids merged into it; publish `Profile Erased` and erased snapshots so every service drops
    its state. Processed message ids stay, so replaying their old events changes nothing."""
    state = await _locked(conn, identifier)
    gone = await repository.merged_ids(conn, state.profile_id)
    await repository.erase(conn, state.profile_id, gone)
    return erased_records([state.profile_id], now)
