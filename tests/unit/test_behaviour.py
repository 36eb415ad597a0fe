"""Behaviour aggregates are folded from events, in any arrival order."""

from __future__ import annotations

from services.profile.behaviour import ProfileState, apply_event
from shared.events import parse_event


def _order(message_id: str, revenue: float, ts: str) -> object:
    return parse_event(
        {"type": "track", "messageId": message_id, "userId": "u", "event": "Order Completed",
         "timestamp": ts, "properties": {"revenue": revenue}}
    )  # fmt: skip


def test_orders_update_revenue_basket_and_dates_out_of_order() -> None:
    state = ProfileState("p")
    apply_event(state, _order("2", 30.0, "2026-03-01T00:00:00Z"))  # type: ignore[arg-type]
    apply_event(state, _order("1", 10.0, "2026-01-01T00:00:00Z"))  # type: ignore[arg-type]
    b = state.behaviour
    assert b["orders_count"] == 2
    assert b["total_revenue"] == 40.0
    assert b["average_basket"] == 20.0
    assert b["first_order_at"].startswith("2026-01-01")
    assert b["last_order_at"].startswith("2026-03-01")
    assert state.version == 2


def test_identify_sets_traits_and_consent_with_source() -> None:
    state = ProfileState("p")
    event = parse_event(
        {"type": "identify", "messageId": "1", "userId": "u",
         "traits": {"first_name": "Ada", "consent": {"email": {"marketing": False}}}}
    )  # fmt: skip
    apply_event(state, event)
    assert state.traits == {"first_name": "Ada"}
    assert state.consent["email"]["marketing"]["granted"] is False
    assert state.consent["email"]["marketing"]["source"] == "identify"
    assert state.user_id == "u"
