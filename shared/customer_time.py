"""The customer's own calendar: their time zone (from `traits.timezone`) and anniversaries of
dates they gave (a birthday on 29 February falls on the 28th in a common year). Segments,
journeys and the send policy all read time this way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def customer_zone(profile: Mapping[str, Any], default: str = "UTC") -> ZoneInfo:
    """`traits.timezone` (an IANA name), else `default`, else UTC, whatever is unreadable."""
    traits = profile.get("traits")
    name = traits.get("timezone") if isinstance(traits, Mapping) else None
    for candidate in (name, default):
        if isinstance(candidate, str) and candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def anniversary_in(year: int, month: int, day: int) -> date:
    """The day's anniversary in `year`."""
    try:
        return date(year, month, day)
    except ValueError:  # 29 February in a common year: the 28th
        return date(year, month, 28)
