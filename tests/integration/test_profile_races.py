"""Two transactions applying events of the same customer at the same time (two replicas, two
partitions) never lose an update, never split a customer in two, and never leave an identity
pointing at a profile that was merged away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profile import repository
from services.profile.service import IncomingEvent, apply_events
from shared.db import create_engine
from shared.events import parse_event
from shared.settings import Settings

pytestmark = pytest.mark.integration


def _ev(**fields: Any) -> IncomingEvent:
    body = {"type": "track", "event": "X", "messageId": uuid.uuid4().hex, **fields}
    return IncomingEvent(parse_event(body))


async def _apply(engine: AsyncEngine, batch: Sequence[IncomingEvent]) -> None:
    async with engine.begin() as conn:
        await apply_events(conn, batch)


async def _profile(engine: AsyncEngine, identity: str) -> Any:
    async with engine.connect() as conn:
        return await repository.get_profile(conn, identity)


async def test_concurrent_batches_resolve_to_one_profile_with_every_event(
    database_url: str,
) -> None:
    engine = create_engine(Settings(database_url=database_url), pool_size=10)
    try:
        runs = [uuid.uuid4().hex[:8] for _ in range(8)]
        work = []
        for run in runs:
            anon, user = f"a-{run}", f"u-{run}"
            work.append([_ev(type="page", anonymousId=anon), _ev(anonymousId=anon)])
            order = _ev(userId=user, event="Order Completed", properties={"revenue": 5})
            work.append([_ev(type="identify", anonymousId=anon, userId=user), order])
        await asyncio.gather(*(_apply(engine, batch) for batch in work))
        for run in runs:
            by_user = await _profile(engine, f"user:u-{run}")
            by_anon = await _profile(engine, f"anon:a-{run}")
            assert by_user.profile_id == by_anon.profile_id
            assert by_user.behaviour["event_count"] == 4
            assert by_user.behaviour["orders_count"] == 1

        # A merge racing with events for the profile being merged away.
        run = uuid.uuid4().hex[:8]
        await _apply(engine, [_ev(type="identify", userId=f"m-{run}")])
        await _apply(engine, [_ev(type="page", anonymousId=f"d-{run}")])
        merge = [_ev(type="identify", userId=f"m-{run}", anonymousId=f"d-{run}")]
        busy = [[_ev(type="page", anonymousId=f"d-{run}")] for _ in range(6)]
        await asyncio.gather(_apply(engine, merge), *(_apply(engine, b) for b in busy))
        survivor = await _profile(engine, f"user:m-{run}")
        assert (await _profile(engine, f"anon:d-{run}")).profile_id == survivor.profile_id
        assert survivor.behaviour["event_count"] == 1 + 1 + 1 + 6
        assert survivor.behaviour["page_views"] == 7
    finally:
        await engine.dispose()
