"""Per-trait change times: grouped by stamp, last write wins in any order, old form read,
merges keep the newest; profile stamps order as time does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from services.profile.behaviour import ProfileState, apply_event, stamp_of
from services.profile.merge import merge_states
from services.profile.trait_times import KEY, LEGACY_KEY, trait_times
from shared.events import parse_event


def _identify(message_id: str, ts: str, **traits: object) -> object:
    return parse_event(
        {"type": "identify", "messageId": message_id, "userId": "u", "timestamp": ts,
         "traits": traits}
    )  # fmt: skip


def test_one_stamp_per_identify_and_the_newest_value_wins_in_any_order() -> None:
    state = ProfileState("p")
    apply_event(state, _identify("2", "2026-03-01T00:00:00Z", first_name="Ada", city="Paris"))  # type: ignore[arg-type]
    apply_event(state, _identify("1", "2026-01-01T00:00:00Z", first_name="Old", last_name="L"))  # type: ignore[arg-type]
    assert state.traits == {"first_name": "Ada", "city": "Paris", "last_name": "L"}
    assert state.internal[KEY] == {
        "2026-03-01T00:00:00.000000Z": ["first_name", "city"],
        "2026-01-01T00:00:00.000000Z": ["last_name"],
    }


def test_the_old_per_trait_form_is_read_and_replaced() -> None:
    state = ProfileState("p", traits={"first_name": "Ada", "city": "Paris"})
    state.internal[LEGACY_KEY] = {
        "first_name": "2026-03-01T00:00:00+00:00", "city": "2026-01-01T00:00:00+00:00"
    }  # fmt: skip
    apply_event(state, _identify("1", "2026-02-01T00:00:00Z", first_name="Old", city="Lyon"))  # type: ignore[arg-type]
    assert state.traits == {"first_name": "Ada", "city": "Lyon"}
    assert LEGACY_KEY not in state.internal
    assert trait_times(state.internal) == {
        "first_name": "2026-03-01T00:00:00+00:00", "city": "2026-02-01T00:00:00.000000Z"
    }  # fmt: skip


def test_a_merge_keeps_each_traits_newest_value() -> None:
    survivor, other = ProfileState("a"), ProfileState("b")
    apply_event(survivor, _identify("1", "2026-01-01T00:00:00Z", first_name="Old", city="Lyon"))  # type: ignore[arg-type]
    apply_event(other, _identify("2", "2026-02-01T00:00:00Z", first_name="Ada"))  # type: ignore[arg-type]
    merged = merge_states(survivor, other)
    assert merged.traits == {"first_name": "Ada", "city": "Lyon"}
    assert trait_times(merged.internal) == {
        "first_name": "2026-02-01T00:00:00.000000Z", "city": "2026-01-01T00:00:00.000000Z"
    }  # fmt: skip


def test_stamps_are_fixed_width_utc_and_order_as_time_does_beside_old_ones() -> None:
    base = datetime(2026, 12, 2, 19, 39, 45, tzinfo=UTC)
    moments = [base + timedelta(microseconds=m) for m in (0, 1, 999_999, 1_000_000, 142_437)]
    stamps = [stamp_of(m) for m in moments]
    assert {len(s) for s in stamps} == {27}
    assert stamp_of(base.astimezone(timezone(timedelta(hours=2)))) == "2026-12-02T19:39:45.000000Z"
    assert sorted(stamps) == [stamp_of(m) for m in sorted(moments)]
    old = [m.isoformat() for m in moments]  # how stamps were written before
    for m, s in zip(moments, stamps, strict=True):
        for m_old, s_old in zip(moments, old, strict=True):
            if m != m_old:
                assert (s < s_old) == (m < m_old), (s, s_old)
