"""CEL checked against the declared variables: typos of variables and closed fields, type
mismatches on typed fields; open maps (traits, event properties) take any key. The declared
profile shape is kept in step with what the profile service's fold really writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.profile.behaviour import ProfileState, apply_event
from shared.cel_check import (
    JOURNEY_VARIABLES,
    PROFILE,
    SEGMENT_VARIABLES,
    Closed,
    Open,
    problems,
)
from shared.events import parse_event


@pytest.mark.parametrize(
    "source",
    [
        "has(event.properties.cart_id)",
        'event.properties.survey == "nps" && double(event.properties.score) <= 6.0',
        'event.properties.products.exists(p, p.product_id == "sku-espresso")',
        "has(profile.behaviour.orders_count) && profile.behaviour.orders_count > 0",
        'profile.traits.email.endsWith("@example.com")',
        "profile.behaviour.last_email_opened_at != '' && profile.behaviour.last_nps_score >= 9.0",
        'journey.trigger.properties.sku == "x" && journey.step_id == "wait"',
        '"profile.behaviour.nope" != event.event',  # a path inside a string is only text
        'event.channel == "server" && event.context.ip != ""',  # Segment's common fields
    ],
)
def test_conditions_that_can_work_pass(source: str) -> None:
    assert problems(source, JOURNEY_VARIABLES) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("evnt.properties.revenue > 50", "unknown variable 'evnt'"),
        ("profile.behaviour.order_count > 3", "profile.behaviour has no field 'order_count'"),
        ("profile.behaviour.open_cart.itemz > 1", "profile.behaviour.open_cart has no field"),
        ('profile.behaviour.orders_count > "3"', "type mismatch: No such overload"),
        ("profile.behaviour.orders_count + 1.5 > 2.0", "type mismatch"),
        ("size(event.traits) >= 0 && nofunc(1)", "Undefined variable or function: 'nofunc'"),
        ("event.propertys.x == 1", "event has no field 'propertys'"),
    ],
)
def test_conditions_that_cannot_work_are_named(source: str, expected: str) -> None:
    found = problems(source, JOURNEY_VARIABLES)
    assert found
    assert expected in found[0]


def test_segments_see_only_the_profile() -> None:
    assert problems("profile.behaviour.orders_count > 2", SEGMENT_VARIABLES) == []
    assert "unknown variable 'event'" in problems("event.event == 'x'", SEGMENT_VARIABLES)[0]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _undeclared(node: Any, value: Any, path: str) -> list[str]:
    """Paths of `value` the declaration does not know, or knows with another kind."""
    if isinstance(node, Open):
        return []
    if isinstance(node, Closed):
        if not isinstance(value, dict):
            return [f"{path}: a map in the declaration, {_kind(value)} in the data"]
        out: list[str] = []
        for key, child in value.items():
            if not node.declares(key):
                out.append(f"{path}.{key}: not declared")
            else:
                out += _undeclared(node.child(key), child, f"{path}.{key}")
        return out
    return [] if _kind(node) == _kind(value) else [f"{path}: {_kind(node)} vs {_kind(value)}"]


def test_the_declared_profile_covers_everything_the_fold_writes() -> None:
    state = ProfileState("p-1")
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    messages: list[dict[str, Any]] = [
        {"type": "page", "name": "home"},
        {"type": "identify", "traits": {"email": "a@example.com", "birthday": "1990-05-17"}},
        {"type": "track", "event": "Product Viewed", "properties": {"product_id": "sku-1"}},
        {"type": "track", "event": "Product Added",
         "properties": {"product_id": "sku-1", "price": 12.5, "quantity": 2, "name": "Beans"}},
        {"type": "track", "event": "Order Completed", "properties": {"revenue": 25.0}},
        {"type": "track", "event": "Order Refunded", "properties": {"revenue": 5.0}},
        {"type": "track", "event": "Product Added",
         "properties": {"product_id": "sku-2", "price": 3.0}},
        {"type": "track", "event": "Message Opened",
         "properties": {"channel": "email", "template": "welcome"}},
        {"type": "track", "event": "Message Clicked", "properties": {"channel": "sms"}},
        {"type": "track", "event": "Survey Responded", "properties": {"survey": "nps", "score": 9}},
    ]  # fmt: skip
    for i, message in enumerate(messages):
        apply_event(
            state,
            parse_event(
                {**message, "messageId": f"m-{i}", "userId": "u-1",
                 "timestamp": (at + timedelta(minutes=i)).isoformat()}
            ),
        )  # fmt: skip
    written = {"behaviour": state.behaviour, "traits": state.traits, "consent": state.consent}
    assert _undeclared(PROFILE, written, "profile") == []
    assert {"open_cart", "net_revenue", "last_message_opened", "last_nps_score"} <= set(
        state.behaviour
    )
