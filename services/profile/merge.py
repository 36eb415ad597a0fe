"""Merging two profiles that turn out to be one person, with no I/O.

Traits: per trait, the newer change wins (the change times are kept in `internal`). Aggregates:
counts and sums add up, first/last take min/max, "latest" facts keep the newer, visit days
unite, the open cart keeps the newer line per product minus what an order emptied; so the
merged profile is what folding both event histories into one would have given. Consent: the
most restrictive answer wins (`consent.merge`), and `unsubscribed` stays true if either was.
The survivor's version moves past both, so no projection keeps the older state.
"""

from __future__ import annotations

from typing import Any

from services.profile import consent as consent_rules
from services.profile.behaviour import (
    CART_REMOVED,
    UNSUBSCRIBED,
    ProfileState,
    clear_cart,
    recompute,
)
from services.profile.trait_times import store_trait_times, trait_times
from services.profile.visit_days import VisitDays

SUMS = (
    "event_count", "page_views", "product_views", "orders_count", "total_revenue",
    "refunds_count", "total_refunded",
)  # fmt: skip
NEWEST_BY = {"last_product_viewed": "last_product_viewed_at"}


def _merge_behaviour(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    out = dict(mine)
    for key, value in theirs.items():
        held = out.get(key)
        if held is None:
            out[key] = value
        elif key in SUMS:
            out[key] = round(held + value, 2)
        elif key.startswith("first_") and key.endswith("_at"):
            out[key] = min(held, value)
        elif key.endswith("_at") and isinstance(value, str):
            out[key] = max(held, value)
        elif key in NEWEST_BY:
            stamp = NEWEST_BY[key]
            if str(theirs.get(stamp, "")) > str(mine.get(stamp, "")):
                out[key] = value
        elif key.startswith("last_") and key.endswith("_score"):
            survey = key[len("last_") : -len("_score")]
            scores_mine = mine.get("last_survey_scores", {}).get(survey, {})
            scores_theirs = theirs.get("last_survey_scores", {}).get(survey, {})
            if str(scores_theirs.get("at", "")) > str(scores_mine.get("at", "")):
                out[key] = value
        elif isinstance(held, dict) and key != "open_cart":
            merged = dict(held)  # {channel or survey: {"at": ..., ...}}
            for sub, entry in value.items():
                if str(entry.get("at", "")) > str(merged.get(sub, {}).get("at", "")):
                    merged[sub] = entry
            out[key] = merged
    return out


def _merge_cart(b: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    lines: dict[str, dict[str, Any]] = {}
    for cart in (mine.get("open_cart"), theirs.get("open_cart")):
        for line in (cart or {}).get("items", []):
            held = lines.get(line["product_id"])
            if held is None or line["added_at"] > held["added_at"]:
                lines[line["product_id"]] = dict(line)
    if lines or "open_cart" in b:
        activity = b.get("last_cart_activity_at")
        b["open_cart"] = {"items": list(lines.values()), "last_activity_at": activity}


def merge_states(survivor: ProfileState, other: ProfileState) -> ProfileState:
    """`other` folded into `survivor` (in place); `other` is left untouched."""
    times = trait_times(survivor.internal)
    traits = dict(survivor.traits)
    for name, stamp in trait_times(other.internal).items():
        if stamp > times.get(name, ""):
            times[name] = stamp
            if name in other.traits:
                traits[name] = other.traits[name]
            else:
                traits.pop(name, None)
    for name, value in other.traits.items():
        if name not in traits and name not in times:
            traits[name] = value
    if survivor.traits.get(UNSUBSCRIBED) or other.traits.get(UNSUBSCRIBED):
        traits[UNSUBSCRIBED] = True
    behaviour = _merge_behaviour(survivor.behaviour, other.behaviour)
    _merge_cart(behaviour, survivor.behaviour, other.behaviour)
    internal: dict[str, Any] = {}
    store_trait_times(internal, times)
    days = VisitDays.of(survivor.internal).union(VisitDays.of(other.internal))
    if days.count():
        days.store(internal)
        behaviour["visits"] = days.count()
    removed = dict(survivor.internal.get(CART_REMOVED, {}))
    for product, stamp in other.internal.get(CART_REMOVED, {}).items():
        removed[product] = max(removed.get(product, ""), stamp)
    if removed:
        internal[CART_REMOVED] = removed
        cart = behaviour.get("open_cart") or {}
        cart["items"] = [
            i for i in cart.get("items", []) if i["added_at"] > removed.get(i["product_id"], "")
        ]
    clear_cart(behaviour, internal)  # to the merged last order; prunes older removals
    recompute(behaviour)
    survivor.traits = traits
    survivor.behaviour = behaviour
    survivor.internal = internal
    survivor.consent = consent_rules.merge(survivor.consent, other.consent)
    survivor.user_id = survivor.user_id or other.user_id
    survivor.anonymous_id = survivor.anonymous_id or other.anonymous_id
    survivor.version = max(survivor.version, other.version) + 1
    if other.updated_at and (survivor.updated_at is None or other.updated_at > survivor.updated_at):
        survivor.updated_at = other.updated_at
    return survivor
