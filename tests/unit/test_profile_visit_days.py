"""Distinct visit days as a bitmap: exact in any order, read from the old list, merged."""

from __future__ import annotations

import random
from datetime import date, timedelta

from services.profile.behaviour import ProfileState
from services.profile.merge import merge_states
from services.profile.visit_days import KEY, LEGACY_KEY, VisitDays


def _days(n: int, start: date = date(2024, 1, 1)) -> list[date]:
    return [start + timedelta(days=2 * i) for i in range(n)]


def test_counts_each_day_once_whatever_the_order() -> None:
    days = _days(200) * 2
    random.Random(3).shuffle(days)
    visits = VisitDays()
    added = [visits.add(d) for d in days]
    assert visits.count() == 200
    assert sum(added) == 200  # the second sighting of a day is not new
    assert visits.first == date(2024, 1, 1)


def test_round_trips_through_the_internal_state_and_stays_small() -> None:
    visits = VisitDays()
    for d in (date(2023, 1, 1) + timedelta(days=i) for i in range(3 * 365)):
        visits.add(d)
    internal: dict[str, object] = {LEGACY_KEY: ["2020-01-01"]}
    visits.store(internal)
    assert LEGACY_KEY not in internal
    assert len(str(internal[KEY])) < 250  # three years of daily visits
    again = VisitDays.of(internal)
    assert again == visits
    assert again.count() == 3 * 365


def test_the_old_list_of_dates_is_read() -> None:
    visits = VisitDays.of({LEGACY_KEY: ["2026-01-03", "2026-01-01"]})
    assert visits.count() == 2
    assert not visits.add(date(2026, 1, 3))
    assert visits.add(date(2025, 12, 31))
    assert visits.count() == 3


def test_a_merge_is_the_union_of_both_customers_days() -> None:
    a, b = VisitDays(), VisitDays()
    for d in _days(5, date(2026, 3, 1)):
        a.add(d)
    for d in _days(5, date(2026, 3, 5)):  # three days in common
        b.add(d)
    merged = a.union(b)
    assert merged.count() == 7
    assert merged.first == date(2026, 3, 1)
    assert merged == b.union(a)
    assert VisitDays().union(a) == a
    assert a.union(VisitDays()) == a


def test_merging_profiles_counts_a_day_both_visited_once_old_form_or_new() -> None:
    new_form: dict[str, object] = {}
    days = VisitDays()
    for d in (date(2026, 1, 1), date(2026, 1, 2)):
        days.add(d)
    days.store(new_form)
    survivor = ProfileState("a", behaviour={"visits": 2}, internal=new_form)
    other = ProfileState(
        "b", behaviour={"visits": 2}, internal={LEGACY_KEY: ["2026-01-02", "2026-01-05"]}
    )
    merged = merge_states(survivor, other)
    assert merged.behaviour["visits"] == 3
    assert LEGACY_KEY not in merged.internal
    assert VisitDays.of(merged.internal).count() == 3
