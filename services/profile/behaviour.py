"""How one event changes a profile: traits, behaviour aggregates, consent. Pure functions over
plain dicts, so they run in microseconds in tests and in batches in the consumer.

Every aggregate is order-independent or decided by event time, never by arrival order: counts
and sums commute, first/last use min/max of the event time, "latest" facts (a trait, a consent
answer, the last message opened, the last survey score, the open cart) keep the one with the
newest timestamp. Redelivery is handled before this module by the processed-message check, so
folding the same events in any order gives the same profile (`merge.py` combines two profiles
with the same rules).

Definitions: a visit is a UTC day with at least one page or screen view (exact under
redelivery, reordering and merges, unlike 30-minute sessions, which need every timestamp); the
open cart holds products added after the last order and not removed since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.profile import consent as consent_rules
from services.profile.consent import ConsentChange
from services.profile.trait_times import store_trait_times, trait_times
from services.profile.traits import InvalidTrait, normalise_traits
from services.profile.visit_days import LEGACY_KEY, VisitDays
from shared.events import Event, IdentifyEvent, PageEvent, ScreenEvent, TrackEvent

CONSENT_TRAIT = "consent"
UNSUBSCRIBED = "unsubscribed"
CART_EVENTS = ("Product Added", "Product Removed", "Cart Viewed", "Checkout Started")
MESSAGE_EVENTS = {"Message Opened": "opened", "Message Clicked": "clicked"}
# internal: {product: time of its latest removal after the last order}
CART_REMOVED = "cart_removed"
# internal, in rows written before: always equal to the last order's time, so no longer kept
LEGACY_CART_CLEARED = "cart_cleared_at"


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
    # Bookkeeping that makes the aggregates exact, never published: per-trait change times,
    # visit days, cart clearing and removal times.
    internal: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


def stamp_of(moment: datetime) -> str:
    """How an event time is kept in the profile: UTC, fixed width with microseconds and `Z`
    (`2026-12-02T19:39:45.142437Z`), so text order is time order. Five characters shorter
    than `isoformat()`'s `+00:00`, and a profile holds about twenty stamps. Stamps written
    before in that form still order correctly against these: they differ at the first
    differing digit, or only in the suffix when the times are equal."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def _bump_time(behaviour: dict[str, Any], first: str, last: str, stamp: str) -> None:
    if behaviour.get(first) is None or stamp < behaviour[first]:
        behaviour[first] = stamp
    if behaviour.get(last) is None or stamp > behaviour[last]:
        behaviour[last] = stamp


def _add(behaviour: dict[str, Any], key: str, amount: float = 1) -> None:
    behaviour[key] = round(behaviour.get(key, 0) + amount, 2)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _order_value(properties: dict[str, Any]) -> float:
    for key in ("revenue", "total", "value"):
        value = _number(properties.get(key))
        if value is not None:
            return value
    return 0.0


def recompute(b: dict[str, Any]) -> None:
    """Aggregates derived from others (after a fold or a merge)."""
    if b.get("orders_count"):
        b["average_basket"] = round(b.get("total_revenue", 0) / b["orders_count"], 2)
    if "total_refunded" in b or "total_revenue" in b:
        b["net_revenue"] = round(b.get("total_revenue", 0) - b.get("total_refunded", 0), 2)
    cart = b.get("open_cart")
    if isinstance(cart, dict):
        items = cart.get("items", [])
        cart["value"] = round(sum(i.get("price", 0) * i.get("quantity", 1) for i in items), 2)
        cart["items_count"] = sum(int(i.get("quantity", 1)) for i in items)


def _newer(current: Any, stamp: str) -> bool:
    return not isinstance(current, dict) or str(current.get("at", "")) <= stamp


def set_traits(state: ProfileState, traits: dict[str, Any], stamp: str) -> None:
    times = trait_times(state.internal)
    for name, value in traits.items():
        if times.get(name, "") > stamp:
            continue  # a newer identify already set this trait
        times[name] = stamp
        if value is None:
            state.traits.pop(name, None)
        else:
            state.traits[name] = value
    store_trait_times(state.internal, times)


def _identify(state: ProfileState, event: IdentifyEvent, stamp: str) -> list[ConsentChange]:
    traits = dict(event.traits)
    update = traits.pop(CONSENT_TRAIT, None)
    try:
        traits = normalise_traits(traits)
    except InvalidTrait:
        traits = {}  # validated at the edge; a record that bypassed it keeps no bad trait
    changes: list[ConsentChange] = []
    if update is not None:
        try:
            parsed = consent_rules.parse_update(update, "traits.consent")
        except consent_rules.InvalidConsent:
            parsed = {}
        changes += consent_rules.apply_update(state.consent, parsed, "identify", stamp)
    unsubscribed = traits.get(UNSUBSCRIBED)
    if isinstance(unsubscribed, bool):
        held = trait_times(state.internal).get(UNSUBSCRIBED, "")
        if held <= stamp and bool(state.traits.get(UNSUBSCRIBED)) is not unsubscribed:
            all_ = consent_rules.ALL
            changes.append(ConsentChange(all_, all_, not unsubscribed, "identify", stamp))
    set_traits(state, traits, stamp)
    return changes


def _cart(b: dict[str, Any], internal: dict[str, Any], name: str, props: dict[str, Any],
          stamp: str) -> None:  # fmt: skip
    if b.get("last_cart_activity_at", "") < stamp:
        b["last_cart_activity_at"] = stamp
    cart = b.setdefault("open_cart", {"items": []})
    cart["last_activity_at"] = b["last_cart_activity_at"]
    product = str(props.get("product_id") or props.get("sku") or "")
    if not product or name not in ("Product Added", "Product Removed"):
        return
    items: list[dict[str, Any]] = cart["items"]
    line = next((i for i in items if i["product_id"] == product), None)
    removed: dict[str, str] = internal.get(CART_REMOVED, {})
    if name == "Product Removed":
        if stamp > b.get("last_order_at", ""):  # before it, the order's clearing covers it
            removed[product] = max(removed.get(product, ""), stamp)
            internal[CART_REMOVED] = removed
        if line is not None and line["added_at"] <= stamp:
            items.remove(line)
        return
    if stamp <= b.get("last_order_at", "") or stamp <= removed.get(product, ""):
        return  # added before the order that emptied the cart, or before its removal
    quantity = int(_number(props.get("quantity")) or 1)
    if line is None:
        line = {"product_id": product, "quantity": 0, "added_at": stamp}
        items.append(line)
    line["quantity"] += quantity
    line["added_at"] = max(line["added_at"], stamp)
    for key in ("name", "price"):
        if key in props:
            line[key] = props[key]


def clear_cart(b: dict[str, Any], internal: dict[str, Any]) -> None:
    """The last order empties the cart of everything added up to its time. Adds before it are
    refused from then on, so removals before it need no remembering: only later ones are kept
    (the list would otherwise grow with every product a customer ever removed)."""
    cleared = b.get("last_order_at", "")
    internal.pop(LEGACY_CART_CLEARED, None)  # older rows kept the last order's time twice
    removed = {p: at for p, at in internal.get(CART_REMOVED, {}).items() if at > cleared}
    if removed:
        internal[CART_REMOVED] = removed
    else:
        internal.pop(CART_REMOVED, None)
    cart = b.get("open_cart")
    if isinstance(cart, dict):
        cart["items"] = [i for i in cart.get("items", []) if i["added_at"] > cleared]


def _track(state: ProfileState, event: TrackEvent, stamp: str) -> None:
    b, name, props = state.behaviour, event.event, event.properties
    if name == "Product Viewed":
        _add(b, "product_views")
        if b.get("last_product_viewed_at", "") <= stamp:
            b["last_product_viewed_at"] = stamp
            b["last_product_viewed"] = props.get("product_id") or props.get("sku")
    elif name in CART_EVENTS:
        _cart(b, state.internal, name, props, stamp)
    elif name == "Order Completed":
        _add(b, "orders_count")
        _add(b, "total_revenue", _order_value(props))
        _bump_time(b, "first_order_at", "last_order_at", stamp)
        clear_cart(b, state.internal)
    elif name == "Order Refunded":
        _add(b, "refunds_count")
        _add(b, "total_refunded", _order_value(props))
    elif name in MESSAGE_EVENTS:
        channel = str(props.get("channel") or "email")
        kind = MESSAGE_EVENTS[name]
        held = b.setdefault(f"last_message_{kind}", {})
        if _newer(held.get(channel), stamp):
            keep = ("template", "journey_id", "dispatch_id", "message_type", "url")
            held[channel] = {"at": stamp, **{k: props[k] for k in keep if k in props}}
            b[f"last_{channel}_{kind}_at"] = stamp
    elif name == "Survey Responded":
        survey, score = props.get("survey"), _number(props.get("score"))
        if isinstance(survey, str) and score is not None:
            held = b.setdefault("last_survey_scores", {})
            if _newer(held.get(survey), stamp):
                held[survey] = {"score": score, "at": stamp}
                b[f"last_{survey}_score"] = score


def apply_event(state: ProfileState, event: Event) -> list[ConsentChange]:
    """Fold one event into the profile (in place), advance its version, return consent changes."""
    b = state.behaviour
    ts = event.timestamp.astimezone(UTC)
    stamp = stamp_of(ts)
    if event.user_id and not state.user_id:
        state.user_id = event.user_id
    if event.anonymous_id and not state.anonymous_id:
        state.anonymous_id = event.anonymous_id
    _add(b, "event_count")
    _bump_time(b, "first_seen_at", "last_seen_at", stamp)
    changes: list[ConsentChange] = []
    if isinstance(event, IdentifyEvent):
        changes = _identify(state, event, stamp)
    elif isinstance(event, PageEvent | ScreenEvent):
        _add(b, "page_views")
        days = VisitDays.of(state.internal)
        if days.add(ts.date()) or LEGACY_KEY in state.internal:
            days.store(state.internal)
        b["visits"] = days.count()
    elif isinstance(event, TrackEvent):
        _track(state, event, stamp)
    recompute(b)
    state.version += 1
    if state.updated_at is None or ts > state.updated_at:
        state.updated_at = ts
    return changes
