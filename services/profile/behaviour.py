"""How one event changes a profile: traits, behaviour aggregates, consent. Pure functions over
plain dicts, so they run in microseconds in tests and in batches in the consumer.

Aggregates stay correct under out-of-order timestamps (first/last use min/max of the event time,
not arrival order); redelivery is handled before this module by the processed-message check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.events import Event, IdentifyEvent, PageEvent, ScreenEvent, TrackEvent

CONSENT_TRAIT = "consent"


@dataclass
class ProfileState:
    profile_id: str
    version: int = 0
    user_id: str | None = None
    anonymous_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    behaviour: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def _bump_time(behaviour: dict[str, Any], first: str, last: str, ts: datetime) -> None:
    stamp = _iso(ts)
    if behaviour.get(first) is None or stamp < behaviour[first]:
        behaviour[first] = stamp
    if behaviour.get(last) is None or stamp > behaviour[last]:
        behaviour[last] = stamp


def _add(behaviour: dict[str, Any], key: str, amount: float = 1) -> None:
    behaviour[key] = round(behaviour.get(key, 0) + amount, 2)


def _order_value(properties: dict[str, Any]) -> float:
    for key in ("revenue", "total", "value"):
        value = properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _merge_consent(consent: dict[str, Any], update: Any, ts: datetime, source: str) -> None:
    """`consent` trait: {channel: {message_type: bool}}; each change keeps its source and time."""
    if not isinstance(update, dict):
        return
    for channel, types in update.items():
        if not isinstance(types, dict):
            continue
        current = consent.setdefault(str(channel), {})
        for message_type, granted in types.items():
            if isinstance(granted, bool):
                current[str(message_type)] = {
                    "granted": granted,
                    "source": source,
                    "at": _iso(ts),
                }


def apply_event(state: ProfileState, event: Event) -> None:
    """Fold one event into the profile (in place) and advance its version."""
    b = state.behaviour
    ts = event.timestamp
    if event.user_id and not state.user_id:
        state.user_id = event.user_id
    if event.anonymous_id and not state.anonymous_id:
        state.anonymous_id = event.anonymous_id
    _add(b, "event_count")
    _bump_time(b, "first_seen_at", "last_seen_at", ts)
    if isinstance(event, IdentifyEvent):
        traits = dict(event.traits)
        _merge_consent(state.consent, traits.pop(CONSENT_TRAIT, None), ts, "identify")
        state.traits.update(traits)
    elif isinstance(event, PageEvent | ScreenEvent):
        _add(b, "page_views")
    elif isinstance(event, TrackEvent):
        name = event.event
        if name == "Product Viewed":
            _add(b, "product_views")
        elif name == "Order Completed":
            value = _order_value(event.properties)
            _add(b, "orders_count")
            _add(b, "total_revenue", value)
            b["average_basket"] = round(b["total_revenue"] / b["orders_count"], 2)
            _bump_time(b, "first_order_at", "last_order_at", ts)
        elif name == "Order Refunded":
            _add(b, "refunds_count")
            _add(b, "total_refunded", _order_value(event.properties))
    state.version += 1
    if state.updated_at is None or ts > state.updated_at:
        state.updated_at = ts
