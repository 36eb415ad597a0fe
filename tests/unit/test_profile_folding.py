"""Aggregates, traits and consent fold exactly whatever the arrival order, and a merge of two
profiles equals folding both histories into one."""

from __future__ import annotations

import itertools
import random
from typing import Any

from services.profile.behaviour import ProfileState, apply_event
from services.profile.merge import merge_states
from shared.events import Event, parse_event


def _e(seq: int, ts: str, **fields: Any) -> Event:
    body = {"type": "track", "messageId": f"m{seq}", "userId": "u", "timestamp": ts, **fields}
    return parse_event(body)


HISTORY = [
    _e(1, "2026-01-01T10:00:00Z", type="page", name="Home"),
    _e(2, "2026-01-01T10:05:00Z", event="Product Viewed", properties={"product_id": "a"}),
    _e(3, "2026-01-01T10:06:00Z", event="Product Added",
       properties={"product_id": "a", "price": 10.0, "quantity": 2}),
    _e(4, "2026-01-01T10:07:00Z", event="Order Completed", properties={"revenue": 20.0}),
    _e(5, "2026-01-02T09:00:00Z", type="page", name="Home"),
    _e(6, "2026-01-02T09:01:00Z", event="Product Added",
       properties={"product_id": "b", "price": 5.5}),
    _e(7, "2026-01-03T08:00:00Z", event="Order Refunded", properties={"total": 20.0}),
    _e(8, "2026-01-03T09:00:00Z", event="Message Opened",
       properties={"channel": "email", "template": "welcome"}),
    _e(9, "2026-01-04T09:00:00Z", event="Message Clicked",
       properties={"channel": "email", "template": "promo"}),
    _e(10, "2026-01-05T09:00:00Z", event="Survey Responded",
       properties={"survey": "nps", "score": 9}),
    _e(11, "2026-01-06T09:00:00Z", event="Survey Responded",
       properties={"survey": "nps", "score": 4}),
    _e(12, "2026-01-06T10:00:00Z", type="identify",
       traits={"first_name": "Ada", "consent": {"email": {"marketing": True}}}),
    _e(13, "2026-01-07T10:00:00Z", type="identify",
       traits={"first_name": "Ada L.", "birthday": "1990-12-10",
               "consent": {"email": {"marketing": False}}}),
    _e(14, "2026-01-08T10:00:00Z", event="Order Completed", properties={"revenue": 7.25}),
]  # fmt: skip


def _fold(events: list[Event]) -> ProfileState:
    state = ProfileState("p")
    for event in events:
        apply_event(state, event)
    return state


def _view(state: ProfileState) -> tuple[Any, ...]:
    return state.traits, state.behaviour, state.consent, state.version


def test_every_arrival_order_gives_the_same_profile() -> None:
    expected = _fold(HISTORY)
    rng = random.Random(7)
    for _ in range(50):
        shuffled = HISTORY[:]
        rng.shuffle(shuffled)
        assert _view(_fold(shuffled)) == _view(expected)


def test_aggregates_are_what_the_history_says() -> None:
    b = _fold(HISTORY).behaviour
    assert b["orders_count"] == 2
    assert b["total_revenue"] == 27.25
    assert b["average_basket"] == 13.62
    assert b["refunds_count"] == 1
    assert b["net_revenue"] == 7.25
    assert b["first_order_at"].startswith("2026-01-01T10:07")
    assert b["last_order_at"].startswith("2026-01-08")
    assert b["visits"] == 2
    assert b["page_views"] == 2
    assert b["product_views"] == 1
    assert b["open_cart"]["items"] == []  # the second order emptied it
    assert b["last_cart_activity_at"].startswith("2026-01-02T09:01")
    assert b["last_message_opened"]["email"]["template"] == "welcome"
    assert b["last_message_clicked"]["email"]["template"] == "promo"
    assert b["last_email_clicked_at"].startswith("2026-01-04")
    assert b["last_survey_scores"]["nps"]["score"] == 4
    assert b["last_nps_score"] == 4


def test_open_cart_keeps_items_added_after_the_last_order() -> None:
    events = HISTORY[:6]
    b = _fold(events).behaviour
    assert [(i["product_id"], i["quantity"]) for i in b["open_cart"]["items"]] == [("b", 1)]
    assert b["open_cart"]["value"] == 5.5


def test_newest_trait_and_consent_win_even_when_older_arrives_last() -> None:
    state = _fold([HISTORY[12], HISTORY[11]])
    assert state.traits["first_name"] == "Ada L."
    assert state.traits["birthday"] == "1990-12-10"
    assert state.consent["email"]["marketing"]["granted"] is False


def test_merging_two_halves_equals_folding_the_whole_history() -> None:
    whole = _fold(HISTORY)
    for cut in itertools.islice(itertools.combinations(range(len(HISTORY)), 5), 0, 200, 7):
        mine = _fold([e for i, e in enumerate(HISTORY) if i in cut])
        theirs = _fold([e for i, e in enumerate(HISTORY) if i not in cut])
        merged = merge_states(mine, theirs)
        assert merged.traits == whole.traits
        assert merged.consent == whole.consent
        assert merged.behaviour == whole.behaviour, cut


def test_merge_keeps_the_most_restrictive_consent() -> None:
    a, b = ProfileState("a", version=3), ProfileState("b", version=8)
    refused = {"email": {"marketing": False}, "sms": {"marketing": True}}
    granted = {"email": {"marketing": True, "newsletter": True}}
    apply_event(a, _e(1, "2026-02-01T00:00:00Z", type="identify", traits={"consent": refused}))
    apply_event(b, _e(2, "2026-03-01T00:00:00Z", type="identify", traits={"consent": granted}))
    merged = merge_states(b, a)
    assert merged.consent["email"]["marketing"]["granted"] is False  # older refusal still wins
    assert merged.consent["email"]["newsletter"]["granted"] is True
    assert merged.consent["sms"]["marketing"]["granted"] is True
    assert merged.version == 10  # past both


def test_identify_consent_changes_are_reported_for_the_history() -> None:
    state = ProfileState("p")
    changes = apply_event(state, HISTORY[11])
    assert [(c.channel, c.message_type, c.granted, c.source) for c in changes] == [
        ("email", "marketing", True, "identify")
    ]
    assert apply_event(state, HISTORY[11].model_copy(update={"message_id": "again"})) == []
    unsub = apply_event(state, _e(20, "2026-02-01T00:00:00Z", type="identify",
                                  traits={"unsubscribed": True}))  # fmt: skip
    assert [(c.channel, c.granted) for c in unsub] == [("all", False)]
    assert state.traits["unsubscribed"] is True


CART_HISTORY = [
    *HISTORY,
    _e(20, "2026-01-01T10:06:30Z", event="Product Removed", properties={"product_id": "a"}),
    _e(21, "2026-01-09T10:00:00Z", event="Product Added", properties={"product_id": "c"}),
    _e(22, "2026-01-09T11:00:00Z", event="Product Removed", properties={"product_id": "c"}),
    _e(23, "2026-01-09T12:00:00Z", event="Product Added", properties={"product_id": "d"}),
    _e(24, "2026-01-09T12:30:00Z", event="Product Removed", properties={"product_id": "e"}),
]


def test_removals_fold_in_any_order_and_only_those_after_the_last_order_are_kept() -> None:
    expected = _fold(CART_HISTORY)
    assert [i["product_id"] for i in expected.behaviour["open_cart"]["items"]] == ["d"]
    rng = random.Random(11)
    for _ in range(50):
        shuffled = CART_HISTORY[:]
        rng.shuffle(shuffled)
        state = _fold(shuffled)
        assert _view(state) == _view(expected)
        # a's removal came before the last order, which refuses earlier adds anyway
        assert sorted(state.internal.get("cart_removed", {})) == ["c", "e"]
    for cut in itertools.islice(itertools.combinations(range(len(CART_HISTORY)), 7), 0, 400, 13):
        mine = _fold([e for i, e in enumerate(CART_HISTORY) if i in cut])
        theirs = _fold([e for i, e in enumerate(CART_HISTORY) if i not in cut])
        assert merge_states(mine, theirs).behaviour == expected.behaviour, cut


def test_a_profile_without_removals_keeps_no_removal_list() -> None:
    assert "cart_removed" not in _fold(HISTORY).internal
