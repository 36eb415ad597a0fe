"""When a wait or a date trigger comes due: times of day in the customer's time zone and dates
held in profile traits. Pure functions of (profile, now)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.customer_time import anniversary_in


def _hm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def next_time_of_day(now: datetime, at: str, zone: ZoneInfo) -> datetime:
    """The next moment strictly after `now` whose local time is `at`."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), _hm(at), zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), _hm(at), zone)
    return candidate.astimezone(UTC)


def trait_date(profile: dict[str, Any], attribute: str) -> date | None:
    """A date from a trait: `YYYY-MM-DD` or an ISO timestamp; None when absent or unreadable."""
    value = (profile.get("traits") or {}).get(attribute)
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def on_date(day: date, offset_days: int, at: str, zone: ZoneInfo) -> datetime:
    return datetime.combine(day + timedelta(days=offset_days), _hm(at), zone).astimezone(UTC)


def next_occurrence(  # noqa: PLR0917
    day: date, offset_days: int, at: str, zone: ZoneInfo, now: datetime, yearly: bool
) -> datetime | None:
    """The next firing of a date trigger at or after today (a yearly one moves to next year
    once this year's has passed); None when a one-off date is in the past."""
    if not yearly:
        moment = on_date(day, offset_days, at, zone)
        return moment if moment.date() >= now.astimezone(zone).date() else None
    today = now.astimezone(zone).date()
    for year in (today.year, today.year + 1):
        moment = on_date(anniversary_in(year, day.month, day.day), offset_days, at, zone)
        if moment.astimezone(zone).date() >= today:
            return moment
    return None


def next_cron(expression: str, after: datetime, zone_name: str) -> datetime:
    zone = ZoneInfo(zone_name)
    following = croniter(expression, after.astimezone(zone)).get_next(datetime)
    assert isinstance(following, datetime)
    return following.astimezone(UTC)


def bucket(*parts: str) -> int:
    """A stable number in [0, 10000) from the parts: holdout draws and random splits agree
    across replicas and redeliveries."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000
