"""Behavioural rules decide membership and say when the answer can next change by time alone;
the catalog re-evaluates only what an event can change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import yaml

from services.segmenter import repository
from services.segmenter.catalog import Catalog, changed_paths, watched_by_section
from services.segmenter.definitions import CompiledSegment, Segment
from services.segmenter.evaluation import OCCURRENCE
from services.segmenter.membership import Decision, decide
from services.segmenter.rfm import RfmConfig
from services.segmenter.service import add_new_facts, decision_changes

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def seg(text: str) -> CompiledSegment:
    return CompiledSegment.of(Segment.model_validate(yaml.safe_load(text)))


def run(
    s: CompiledSegment, facts: dict[Any, Any] | None = None, profile: dict[str, Any] | None = None,
    now: datetime = NOW, current: set[str] | None = None,
) -> tuple[bool, datetime | None]:  # fmt: skip
    d = decide("p1", [s], profile or {}, facts or {}, now=now, current=current or set())
    timer = dict(d.timers).get(s.id)
    return s.id in d.members, timer


SPEND = seg("""
id: spend
name: Spend
where: {aggregate: sum, event: Order Completed, property: revenue, within_days: 30,
        op: '>=', value: 100}
""")


def test_sum_within_window_and_when_it_lapses() -> None:
    orders = {("Order Completed", "revenue"): [(NOW - 20 * DAY, 60.0), (NOW - 2 * DAY, 50.0)]}
    assert run(SPEND, orders) == (True, NOW + 10 * DAY)  # the older order leaves in 10 days
    # 50 left of 100 needed: orders leaving can only lower it, so no timer for this customer
    assert run(SPEND, orders, now=NOW + 10 * DAY) == (False, None)
    assert run(SPEND, {}) == (False, None)
    # a refund (a negative value) can lift the sum when it leaves: look again then
    refunded = {("Order Completed", "revenue"): [(NOW - 20 * DAY, -30.0), (NOW - DAY, 110.0)]}
    assert run(SPEND, refunded) == (False, NOW + 10 * DAY)
    # an order stamped in the future still enters the window when its time comes
    ahead = {("Order Completed", "revenue"): [(NOW - DAY, 50.0), (NOW + 3 * DAY, 60.0)]}
    assert run(SPEND, ahead) == (False, NOW + 3 * DAY)


def test_a_timer_only_where_facts_leaving_the_window_can_flip_the_answer() -> None:
    day_old = [(NOW - DAY, 2.0), (NOW - DAY, 6.0)]
    facts = {("E", OCCURRENCE): [(NOW - DAY, None)] * 3, ("E", "v"): day_old}
    leaves = NOW + 6 * DAY
    for aggregate, op, value, expected in [
        ("count", ">=", 3, (True, leaves)),
        ("count", ">=", 4, (False, None)),
        ("count", "<", 4, (True, None)),
        ("count", "<", 3, (False, leaves)),
        ("count", "==", 3, (True, leaves)),
        ("max", ">=", 9, (False, None)),
        ("max", "<", 5, (False, leaves)),
        ("max", "<", 9, (True, leaves)),  # an emptied window is false
        ("min", "<", 1, (False, None)),
        ("min", ">=", 3, (False, leaves)),
        ("avg", ">=", 9, (False, leaves)),
    ]:
        prop = "" if aggregate == "count" else ", property: v"
        rule = f"{{aggregate: {aggregate}, event: E{prop}, within_days: 7, op: '{op}', "
        rule += f"value: {value}}}"
        assert run(seg(f"id: s\nname: s\nwhere: {rule}\n"), facts) == expected, rule


def test_a_combination_decided_by_a_child_time_cannot_change_has_no_timer() -> None:
    facts = {("Visit", OCCURRENCE): [(NOW - DAY, None)]}
    visited = "{aggregate: count, event: Visit, within_days: 7, value: 1}"
    two_visits = "{aggregate: count, event: Visit, within_days: 7, value: 2}"
    both = seg(f"id: b\nname: b\nwhere: {{all: [{visited}, {two_visits}]}}\n")
    assert run(both, facts) == (False, None)  # the second can never become true by time
    either = seg(f"id: e\nname: e\nwhere: {{any: [{visited}, {two_visits}]}}\n")
    assert run(either, facts) == (True, NOW + 6 * DAY)  # the visit leaving ends it
    stuck = seg(f"id: s\nname: s\nwhere: {{any: [{visited}, {{not_done: Order, for_days: 3}}]}}\n")
    assert run(stuck, facts) == (True, None)  # never ordered: true until an event


def test_count_avg_min_max() -> None:
    facts = {
        ("E", OCCURRENCE): [(NOW - DAY, None)] * 3,
        ("E", "v"): [(NOW - DAY, 2.0), (NOW - DAY, 6.0)],
    }
    for rule, expected in [
        ("{aggregate: count, event: E, within_days: 7, value: 3}", True),
        ("{aggregate: avg, event: E, property: v, within_days: 7, op: '==', value: 4}", True),
        ("{aggregate: min, event: E, property: v, within_days: 7, op: '<', value: 2}", False),
        ("{aggregate: max, event: E, property: v, within_days: 7, op: '>', value: 5}", True),
        ("{aggregate: max, event: F, property: v, within_days: 7, op: '<', value: 5}", False),
    ]:
        assert run(seg(f"id: s\nname: s\nwhere: {rule}\n"), facts)[0] is expected, rule


def test_not_done_for_days() -> None:
    lapsed = seg("id: l\nname: l\nwhere: {not_done: Order Completed, for_days: 60}\n")
    last = {("Order Completed", OCCURRENCE): [(NOW - 10 * DAY, None)]}
    assert run(lapsed, last) == (False, NOW + 50 * DAY)
    assert run(lapsed, last, now=NOW + 50 * DAY) == (True, None)
    assert run(lapsed, {}) == (True, None)


def test_did_then_not_within_hours() -> None:
    cart = seg(
        "id: c\nname: c\nwhere: {did: Checkout Started, then_not: Order Completed,"
        " within_hours: 4, lookback_days: 7}\n"
    )
    started = NOW - timedelta(hours=1)
    facts: dict[Any, Any] = {("Checkout Started", OCCURRENCE): [(started, None)]}
    assert run(cart, facts) == (False, started + timedelta(hours=4))
    assert run(cart, facts, now=started + timedelta(hours=4)) == (True, started + 7 * DAY)
    facts[("Order Completed", OCCURRENCE)] = [(started + timedelta(hours=2), None)]
    assert run(cart, facts, now=started + timedelta(hours=4)) == (False, None)


def test_days_since_and_anniversary() -> None:
    since = seg("id: d\nname: d\nwhere: {days_since: behaviour.last_order_at, value: 60}\n")
    profile = {"behaviour": {"last_order_at": (NOW - 59 * DAY).isoformat()}}
    holds, due = run(since, profile=profile)
    assert not holds
    assert due is not None
    assert NOW + DAY <= due < NOW + DAY + timedelta(seconds=1)
    assert run(since, profile=profile, now=due)[0]

    birthday = seg("id: b\nname: b\nwhere: {anniversary: traits.birthday}\n")
    paris = {"traits": {"birthday": "1990-06-16", "timezone": "Europe/Paris"}}
    holds, due = run(birthday, profile=paris)
    assert (holds, due) == (False, datetime(2026, 6, 15, 22, tzinfo=UTC))  # midnight in Paris
    assert due is not None
    assert run(birthday, profile=paris, now=due) == (True, datetime(2026, 6, 16, 22, tzinfo=UTC))


def test_cel_and_where_combine_and_not_and_in_segment() -> None:
    base = seg("id: base\nname: b\ncondition: profile.traits.vip == true\n")
    combo = seg(
        "id: combo\nname: c\ncondition: has(profile.traits.email)\n"
        "where: {all: [{in_segment: base}, {not: {not_done: Visit, for_days: 3}}]}\n"
    )
    profile = {"traits": {"vip": True, "email": "a@b.c"}}
    facts = {("Visit", OCCURRENCE): [(NOW - DAY, None)]}
    d = decide("p", Catalog([combo, base]).ordered, profile, facts, now=NOW, current={"base"})
    assert d.members == {"base", "combo"}
    assert d.entered == ["combo"]
    assert dict(d.timers) == {"combo": NOW + 2 * DAY}
    gone = decide("p", Catalog([combo, base]).ordered, {"traits": {}}, facts, now=NOW,
                  current={"base", "combo"})  # fmt: skip
    assert sorted(gone.exited) == ["base", "combo"]


def test_catalog_reevaluates_only_what_an_event_can_change() -> None:
    customers = seg("id: customers\nname: c\ncondition: profile.behaviour.orders_count >= 1\n")
    vip = seg("id: vip\nname: v\ncondition: profile.traits.vip == true\n")
    lapsed = seg(
        "id: lapsed\nname: l\nwhere: {all: [{in_segment: customers},"
        " {not_done: Order Completed, for_days: 60}]}\n"
    )
    carts = seg(
        "id: carts\nname: c\n"
        "where: {aggregate: count, event: Cart Viewed, within_days: 1, value: 1}\n"
    )
    catalog = Catalog([lapsed, vip, carts, customers])

    def ids(events: list[str], paths: set[str]) -> list[str]:
        return [s.id for s in catalog.affected_by(events, paths)]

    before = {"behaviour": {"orders_count": 1}, "traits": {"vip": False}}
    after = {"behaviour": {"orders_count": 2}, "traits": {"vip": False}}
    paths = changed_paths(catalog.watched_paths, before, after)
    assert paths == {"behaviour.orders_count"}
    assert ids(["Order Completed"], paths) == ["customers", "lapsed"]  # references first
    assert ids(["Product Viewed"], set()) == []
    assert ids(["Cart Viewed"], {"traits.vip"}) == ["vip", "carts"]
    assert len(changed_paths(catalog.watched_paths, None, after)) == 2
    assert catalog.fact_keys == {("Order Completed", OCCURRENCE), ("Cart Viewed", OCCURRENCE)}


def test_changed_paths_compares_sections_then_fields_nested_ones_too() -> None:
    watched = watched_by_section(["traits.address.city", "traits.vip", "consent", "behaviour.x"])
    base = {"traits": {"vip": True, "address": {"city": "Lyon"}}, "consent": {"email": True}}
    moved = {"traits": {"vip": True, "address": {"city": "Paris"}}, "consent": {"email": True}}
    assert changed_paths(watched, base, moved) == {"traits.address.city"}
    assert changed_paths(watched, base, {**base, "consent": {}}) == {"consent"}
    assert changed_paths(watched, base, {"traits": None}) == {
        "traits.address.city",
        "traits.vip",
        "consent",
    }
    assert changed_paths(watched, base, base) == set()


def test_cel_sees_only_the_fields_the_decided_segments_read() -> None:
    customers = seg("id: customers\nname: c\ncondition: profile.behaviour.orders_count >= 1\n")
    vip = seg("id: vip\nname: v\ncondition: has(profile.traits.vip) && profile.traits.vip\n")
    whole = seg("id: whole\nname: w\ncondition: profile.size() > 0\n")
    catalog = Catalog([customers, vip, whole])
    assert catalog.cel_fields([customers]) == ["behaviour.orders_count"]
    assert catalog.cel_fields([customers, vip]) == ["behaviour.orders_count", "traits.vip"]
    assert catalog.cel_fields([vip, whole]) is None  # reads the profile wholesale
    profile = {"traits": {"vip": True}, "behaviour": {"orders_count": 2}}
    d = decide("p", [customers, vip], profile, {}, now=NOW, current=set(),
               cel_fields=catalog.cel_fields([customers, vip]))  # fmt: skip
    assert d.members == {"customers", "vip"}
    lone = decide("p", [vip], profile, {}, now=NOW, current=set(),
                  cel_fields=catalog.cel_fields([customers]))  # fmt: skip
    assert lone.members == set()  # the field vip reads was left out of the view


def test_new_facts_join_the_stored_ones_in_time_order() -> None:
    inputs = repository.Inputs({"p": {("Order Completed", "revenue"): [(NOW - 2 * DAY, 10.0)]}})
    rows = [
        ("p", "Order Completed", "revenue", NOW - 3 * DAY, 20.0),
        ("p", "Order Completed", "revenue", NOW - DAY, 30.0),
        ("p", "Order Completed", "revenue", NOW - 400 * DAY, 40.0),  # beyond every window
        ("p", "Product Viewed", OCCURRENCE, NOW, None),  # no segment decided reads it
        ("q", "Order Completed", "revenue", NOW, 50.0),  # not decided in this batch
    ]
    add_new_facts(inputs, rows, {"Order Completed"}, NOW - 365 * DAY)
    assert inputs.facts == {"p": {("Order Completed", "revenue"): [
        (NOW - 3 * DAY, 20.0), (NOW - 2 * DAY, 10.0), (NOW - DAY, 30.0),
    ]}}  # fmt: skip


def test_changes_continue_the_trace_of_their_event_one_span_per_profile() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    decisions = [Decision("p", entered=["a", "b"], exited=["c"]), Decision("q", entered=["a"])]
    snaps = {"p": {"version": 3}, "q": {"version": 1}}
    _, out = decision_changes(decisions, snaps, NOW, traces={"p": parent, "q": None})
    traces = [dict(r.headers)["traceparent"].decode().split("-") for r in out]
    assert [t[1] for t in traces[:3]] == ["0af7651916cd43dd8448eb211c80319c"] * 3
    assert len({t[2] for t in traces[:3]}) == 1
    assert traces[0][2] != "b7ad6b7169203331"
    assert traces[3][1] != traces[0][1]  # no parent: a trace of its own


def test_a_timer_is_written_only_when_none_is_stored_or_it_comes_sooner() -> None:
    decision = Decision("p", timers=[("quiet", NOW + 30 * DAY), ("lapsed", NOW + DAY)])
    decision.timers.append(("birthday", NOW + 9 * DAY))
    stored = {("p", "quiet"): NOW + 20 * DAY, ("p", "lapsed"): NOW + 2 * DAY}
    changes, _ = decision_changes([decision], {"p": {"version": 2}}, NOW, timers=stored)
    # quiet: the stored, earlier wake stays (the clock re-arms it then); lapsed comes sooner
    assert changes.due == [("p", "lapsed", NOW + DAY), ("p", "birthday", NOW + 9 * DAY)]


def test_rfm_names_follow_the_first_matching_range() -> None:
    config = RfmConfig()
    assert config.name_of(5, 5, 5) == "rfm-champions"
    assert config.name_of(1, 5, 5) == "rfm-cant-lose"
    assert config.name_of(5, 5, 1) == "rfm-loyal"
    assert config.name_of(1, 1, 1) == "rfm-hibernating"
    assert config.name_of(5, 1, 3) == "rfm-new-customers"


def test_a_profile_changing_several_segments_gets_the_same_bytes_as_one_change_alone() -> None:
    snap = {"profile_id": "p", "version": 3, "updated_at": NOW, "traits": {"first_name": "Zoé"},
            "behaviour": {"orders_count": 2, "total_revenue": 612.5}, "consent": {}}  # fmt: skip
    together = Decision("p", entered=["a", "b"], exited=["c"])
    apart = [
        Decision("p", entered=["a"]),
        Decision("p", entered=["b"]),
        Decision("p", exited=["c"]),
    ]
    _, shared = decision_changes([together], {"p": snap}, NOW)
    alone = [decision_changes([d], {"p": snap}, NOW)[1][0] for d in apart]
    assert [r.value for r in shared] == [r.value for r in alone]
    assert orjson.loads(shared[2].value)["profile"]["updated_at"] == "2026-06-15T12:00:00Z"
