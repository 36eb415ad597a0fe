"""The send policy on the real database, through the channels service's pipeline: caps across
journeys with priority and deferral, quiet hours in the customer's zone, opt-outs honoured even
for messages already waiting, and a property test over consent/dispatch interleavings."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from services.channels.app import create_app
from services.channels.pipeline import Pipeline
from services.channels.repository import contact_row, upsert_contacts
from shared.contracts import DispatchRequest
from shared.settings import Settings
from tests.channels_support import (
    Clock,
    Local,
    attempts,
    channels_settings,
    dispatch,
    granted,
    snapshot,
)
from tests.helpers import running

pytestmark = pytest.mark.integration
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


@pytest.fixture
async def pipeline(settings: Settings, local: Local, clock: Clock) -> AsyncIterator[Pipeline]:
    cfg = channels_settings(settings, local, quiet_hours_start="21:00", quiet_hours_end="08:00",
                            deferred_poll_s=3600)  # fmt: skip
    app = create_app(cfg, clock=clock)
    async with running(app):
        yield app.state.runtime.state["pipeline"]


def _request(raw: bytes) -> DispatchRequest:
    return DispatchRequest.model_validate_json(raw)


async def test_caps_hold_across_three_journeys_with_priority_and_deferral(
    pipeline: Pipeline, local: Local, clock: Clock, database_url: str
) -> None:
    customer = snapshot("p1", email="p1@example.com", timezone="Europe/Paris",
                        consent=granted("email", "marketing"))  # fmt: skip
    batch = [
        _request(dispatch("low-1", "p1", journey="j-low", priority=1, profile=customer)),
        _request(dispatch("high-1", "p1", journey="j-high", priority=5)),
        _request(dispatch("high-2", "p1", journey="j-high", priority=5)),
        _request(dispatch("mid-1", "p1", journey="j-mid", priority=3)),
        _request(dispatch("mid-2", "p1", journey="j-mid", priority=3)),
    ]
    assert await pipeline.dispatch(batch) == 3
    found = await attempts(database_url)
    assert {d for d, a in found.items() if a["status"] == "sent"} == {"high-1", "high-2", "mid-1"}
    assert {d: found[d]["status"] for d in ("mid-2", "low-1")} == dict.fromkeys(
        ("mid-2", "low-1"), "deferred"
    )
    assert found["low-1"]["reason"] == "capped: 3 per 7d"
    # a redelivered batch is a no-op, and nothing is due before the window frees a slot
    assert await pipeline.dispatch(batch) == 0
    clock.advance(timedelta(days=6, hours=23))
    assert await pipeline.run_due() == 0
    clock.advance(timedelta(hours=1, seconds=1))
    assert await pipeline.run_due() == 2
    found = await attempts(database_url)
    assert {a["status"] for a in found.values()} == {"sent"}
    subjects = [m["X-Journeyman-Dispatch-Id"] for m in local.emails()]
    assert sorted(subjects) == sorted(found)  # each exactly once


async def test_a_redelivered_dispatch_does_not_count_twice_against_a_fresh_ones_cap(
    pipeline: Pipeline, local: Local, database_url: str
) -> None:
    """The claim decides before it inserts: a redelivered dispatch in the batch is judged
    beside the fresh one (a send the cap counts on top of its stored attempt), so the fresh
    one must be judged again without it. Cap: 3 marketing emails a week."""
    customer = snapshot("p1", email="p1@example.com", timezone="Europe/Paris",
                        consent=granted("email", "marketing"))  # fmt: skip
    first = [_request(dispatch(d, "p1", profile=customer)) for d in ("a", "b")]
    assert await pipeline.dispatch(first) == 2
    again = [first[0], _request(dispatch("c", "p1"))]
    assert await pipeline.dispatch(again) == 1  # the third this week: within the cap
    found = await attempts(database_url)
    assert {d: a["status"] for d, a in found.items()} == dict.fromkeys("abc", "sent")
    assert await pipeline.dispatch([_request(dispatch("d", "p1"))]) == 0  # the fourth is not
    assert (await attempts(database_url))["d"]["status"] == "deferred"


async def test_quiet_hours_defer_to_the_next_morning_in_the_customers_zone(
    pipeline: Pipeline, local: Local, clock: Clock, database_url: str
) -> None:
    # noon UTC is 23:00 in Sydney, 13:00 in Paris
    sydney = snapshot("syd", email="s@example.com", timezone="Australia/Sydney",
                      consent=granted("email", "marketing", "transactional"))  # fmt: skip
    paris = snapshot("par", email="p@example.com", timezone="Europe/Paris",
                     consent=granted("email", "marketing"))  # fmt: skip
    sent = await pipeline.dispatch([
        _request(dispatch("syd-promo", "syd", profile=sydney)),
        _request(dispatch("syd-receipt", "syd", message_type="transactional")),
        _request(dispatch("par-promo", "par", profile=paris)),
    ])  # fmt: skip
    assert sent == 2
    found = await attempts(database_url)
    assert (found["syd-promo"]["status"], found["syd-promo"]["reason"]) == (
        "deferred", "quiet hours",
    )  # fmt: skip
    clock.now = datetime(2026, 3, 10, 20, 59, tzinfo=UTC)  # 07:59 in Sydney
    assert await pipeline.run_due() == 0
    clock.now = datetime(2026, 3, 10, 21, 0, tzinfo=UTC)  # 08:00 in Sydney
    assert await pipeline.run_due() == 1
    assert len(local.emails()) == 3


async def test_an_opt_out_while_waiting_is_honoured_when_due(
    pipeline: Pipeline, local: Local, clock: Clock, database_url: str
) -> None:
    customer = snapshot("late", email="l@example.com", timezone="Asia/Tokyo",
                        consent=granted("email", "marketing"))  # fmt: skip
    assert await pipeline.dispatch([_request(dispatch("d-late", "late", profile=customer))]) == 0
    withdrawn = snapshot(
        "late",
        2,
        email="l@example.com",
        timezone="Asia/Tokyo",
        consent={"email": {"marketing": {"granted": False, "at": "2026-03-10"}}},
    )
    async with pipeline.engine.begin() as conn:
        await upsert_contacts(conn, [contact_row(withdrawn)])
    clock.advance(timedelta(days=1))
    assert await pipeline.run_due() == 0
    found = (await attempts(database_url))["d-late"]
    assert (found["status"], found["reason"]) == ("suppressed", "no consent")
    assert local.emails() == []


Step = tuple[str, bool]
_examples = itertools.count()


# Each example runs inside Hypothesis, so a failing interleaving is shrunk to the shortest
# one that still fails (steps removed, flags simplified) and reported as such. The pipeline
# fixture is shared by the examples on purpose: each example has a customer of its own, so
# no example sees another's consent, sends or caps.
@hsettings(
    max_examples=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["consent", "dispatch"]), st.booleans()),
        min_size=1, max_size=10,
    )
)  # fmt: skip
async def test_nothing_is_sent_to_a_customer_who_opted_out(
    pipeline: Pipeline, local: Local, database_url: str, steps: list[Step]
) -> None:
    """Random interleavings of consent changes (grant or refuse) and dispatches (marketing or
    transactional): a message is sent exactly when the newest consent allows it at that
    moment, and never to a customer who refused."""
    pid, version, allowed = f"prop-{next(_examples)}", 0, False
    expected: dict[str, bool] = {}
    for i, (kind, flag) in enumerate(steps):
        if kind == "consent":
            version, allowed = version + 1, flag
            at = f"2026-01-01T00:00:{version:02d}"
            snap = snapshot(
                pid,
                version,
                email=f"{pid}@example.com",
                consent={"email": {"marketing": {"granted": flag, "at": at}}},
            )
            async with pipeline.engine.begin() as conn:
                await upsert_contacts(conn, [contact_row(snap)])
        else:
            message_type = "transactional" if flag else "marketing"
            dispatch_id = f"{pid}-{i}"
            await pipeline.dispatch(
                [_request(dispatch(dispatch_id, pid, message_type=message_type,
                                   journey=f"j{i % 3}"))]
            )  # fmt: skip
            # caps are exempt for transactional; marketing stays under 3 per customer
            expected[dispatch_id] = version > 0 and (message_type == "transactional" or allowed)
    found = {d: a for d, a in (await attempts(database_url)).items() if d.startswith(f"{pid}-")}
    assert set(found) == set(expected)
    marketing_sent = 0
    for dispatch_id, should_send in expected.items():
        status = found[dispatch_id]["status"]
        if found[dispatch_id]["message_type"] == "marketing" and status == "sent":
            marketing_sent += 1
        if not should_send:
            assert status == "suppressed", (steps, dispatch_id, found[dispatch_id])
        else:
            assert status in ("sent", "deferred"), (steps, dispatch_id, found[dispatch_id])
            if status == "deferred":
                assert found[dispatch_id]["reason"].startswith("capped")
    received = {
        m["X-Journeyman-Dispatch-Id"]
        for m in local.emails()
        if str(m["X-Journeyman-Dispatch-Id"]).startswith(f"{pid}-")
    }
    assert received == {d for d, a in found.items() if a["status"] == "sent"}
    assert marketing_sent <= 3


async def test_deferred_sends_are_claimed_once_by_workers_side_by_side(
    pipeline: Pipeline, local: Local, clock: Clock, database_url: str
) -> None:
    night = [
        _request(dispatch(f"night-{i}", f"n{i}", profile=snapshot(
            f"n{i}", email=f"n{i}@example.com", timezone="Asia/Tokyo",
            consent=granted("email", "marketing"))))
        for i in range(60)
    ]  # fmt: skip
    assert await pipeline.dispatch(night) == 0  # 21:00 in Tokyo: all wait for the morning
    clock.advance(timedelta(hours=12))
    sent = await asyncio.gather(*(pipeline.run_due(limit=7) for _ in range(12)))
    assert sum(sent) == 60
    received = [m["X-Journeyman-Dispatch-Id"] for m in local.emails()]
    assert sorted(received) == sorted(r.dispatch_id for r in night)
    assert {a["status"] for a in (await attempts(database_url)).values()} == {"sent"}
