"""The journey engine on a virtual clock, with no I/O: each step type and trigger, exit
criteria, goals, holdouts and entry rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from services.journey.compiled import CompiledJourney
from services.journey.dsl import Journey
from services.journey.engine import Engine, in_holdout
from services.journey.simulator import Simulation
from services.journey.state import Effects
from shared.contracts import ProfileSnapshot

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def journey(text: str) -> CompiledJourney:
    return CompiledJourney(Journey.model_validate(yaml.safe_load(text)))


def profile(pid: str = "p1", **traits: Any) -> ProfileSnapshot:
    return ProfileSnapshot(profile_id=pid, version=1, user_id=pid, traits=traits,
                           updated_at=START)  # fmt: skip


def track(name: str, mid: str, pid: str = "p1", **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": mid, "userId": pid, "properties": props}


def sim(text: str, *people: ProfileSnapshot, scale: float = 1.0) -> Simulation:
    s = Simulation(journey(text), START, Engine(scale))
    for p in people or (profile(),):
        s.add_profile(p)
    return s


CART = """
id: cart
name: Cart
version: 1
trigger: {event: Checkout Started}
exit_on: [{event: Order Completed, match: [cart_id]}]
steps:
  - {id: settle, type: wait, duration: 30m}
  - id: wait-order
    type: wait_for_event
    event: Order Completed
    match: [cart_id]
    timeout: 4h
    on_event: done
  - {id: reminder, type: send, channel: email, template: cart-reminder}
  - {id: done, type: exit}
"""


def test_cart_reminder_sent_when_no_order_with_the_same_cart_arrives() -> None:
    s = sim(CART)
    s.event(track("Checkout Started", "m1", cart_id="c1"))
    s.event(track("Order Completed", "m2", cart_id="other"), START + timedelta(hours=1))
    s.run_for(timedelta(hours=5))
    assert [d.template for d in s.sent()] == ["cart-reminder"]
    assert s.sent()[0].dispatch_id == f"{s.of('p1')[0].instance_id}:reminder"


@pytest.mark.parametrize("after", [timedelta(minutes=10), timedelta(hours=2)])
def test_cart_order_with_the_same_cart_sends_nothing(after: timedelta) -> None:
    """Also when the order comes during the first wait (between steps): the exit criterion."""
    s = sim(CART)
    s.event(track("Checkout Started", "m1", cart_id="c1"))
    s.event(track("Order Completed", "m2", cart_id="c1"), START + after)
    s.run_for(timedelta(days=1))
    assert s.sent() == []
    assert s.of("p1")[0].status == "exited"
    assert not s.timers


def test_wait_until_time_of_day_uses_the_customer_time_zone() -> None:
    s = sim(
        """
id: tod
name: T
version: 1
trigger: {event: Signed Up}
steps:
  - {id: morning, type: wait, until_time: "09:00"}
  - {id: hello, type: send, channel: email, template: t}
""",
        profile(timezone="America/New_York"),
    )
    s.event(track("Signed Up", "m1"))
    s.run_for(timedelta(days=2))
    sent_at = s.sent()[0].requested_at
    assert sent_at == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York (05:00 now)


def test_wait_until_date_attribute_with_offset() -> None:
    s = sim(
        """
id: renew
name: R
version: 1
trigger: {event: Order Completed}
steps:
  - {id: before, type: wait, until_date_attribute: renewal_date, offset_days: -3, at: "08:00"}
  - {id: mail, type: send, channel: email, template: t}
""",
        profile(renewal_date="2026-03-20"),
    )
    s.event(track("Order Completed", "m1"))
    s.run_for(timedelta(days=30))
    assert s.sent()[0].requested_at == datetime(2026, 3, 17, 8, 0, tzinfo=UTC)


BRANCHY = """
id: b
name: B
version: 1
trigger: {event: Survey Responded}
steps:
  - id: score
    type: branch
    cases:
      - {condition: "event.properties.score <= 6", next: sorry, label: detractor}
    default: thanks
  - {id: sorry, type: send, channel: email, template: sorry, next: end}
  - {id: thanks, type: send, channel: email, template: thanks}
  - {id: end, type: exit}
"""


def test_branch_on_cel_and_counters_by_label() -> None:
    s = sim(BRANCHY, profile("a"), profile("b"))
    s.event(track("Survey Responded", "m1", "a", score=3))
    s.event(track("Survey Responded", "m2", "b", score=9))
    assert [(d.profile_id, d.template) for d in s.sent()] == [("a", "sorry"), ("b", "thanks")]
    assert s.counters[("b", 1, "score", "branch", "detractor")] == 1
    assert s.counters[("b", 1, "score", "branch", "default")] == 1


def test_split_follows_weights_and_is_stable() -> None:
    text = """
id: ab
name: AB
version: 1
trigger: {event: Go}
steps:
  - id: split
    type: split
    paths: [{label: a, weight: 80, next: a}, {label: b, weight: 20, next: b}]
  - {id: a, type: send, channel: email, template: a, next: fin}
  - {id: b, type: send, channel: email, template: b}
  - {id: fin, type: exit}
"""
    people = [profile(f"p{i}") for i in range(1000)]
    first, second = sim(text, *people), sim(text, *people)
    for s in (first, second):
        for p in people:
            s.event(track("Go", f"m-{p.profile_id}", p.profile_id))
    picks = [d.template for d in first.sent()]
    assert picks == [d.template for d in second.sent()]
    assert 730 < picks.count("a") < 870


def test_update_profile_webhook_goto_guard_and_exit() -> None:
    s = sim("""
id: misc
name: M
version: 1
trigger: {event: Go}
steps:
  - {id: mark, type: update_profile, traits: {vip: true}}
  - {id: hook, type: webhook, url: "https://example.com/hook"}
  - {id: nudge, type: send, channel: sms, template: nudge}
  - {id: pause, type: wait, duration: 1d}
  - {id: again, type: goto, target: nudge, max_loops: 2}
  - {id: stop, type: exit}
""")
    s.event(track("Go", "m1"))
    s.run_for(timedelta(days=10))
    assert s.identifies[0]["traits"] == {"vip": True}
    assert s.identifies[0]["userId"] == "p1"
    assert s.webhooks[0].url == "https://example.com/hook"
    ids = [d.dispatch_id for d in s.sent()]
    assert len(ids) == 3
    assert len(set(ids)) == 3
    inst = s.of("p1")[0]
    assert inst.status == "exited"
    assert inst.reason == "exit step"


def test_exit_criterion_ends_an_instance_at_any_step() -> None:
    text = """
id: drip
name: D
version: 1
trigger: {event: Signed Up}
exit_on: [{event: Unsubscribed}, {segment_exited: customers}]
steps:
  - {id: one, type: send, channel: email, template: one}
  - {id: w1, type: wait, duration: 1d}
  - {id: two, type: send, channel: email, template: two}
  - {id: w2, type: wait, duration: 1d}
  - {id: three, type: send, channel: email, template: three}
"""
    for cut, expected in ((timedelta(hours=1), ["one"]), (timedelta(hours=30), ["one", "two"])):
        s = sim(text)
        s.event(track("Signed Up", "m1"))
        s.event(track("Unsubscribed", "m2"), START + cut)
        s.run_for(timedelta(days=5))
        assert [d.template for d in s.sent()] == expected
    s = sim(text)
    s.event(track("Signed Up", "m1"))
    s.segment("p1", "customers", "exited", START + timedelta(hours=2))
    s.run_for(timedelta(days=5))
    assert [d.template for d in s.sent()] == ["one"]
    assert s.counters[("drip", 1, "w1", "exited", "")] == 1


GOAL = """
id: g
name: G
version: 1
trigger: {event: Signed Up}
entry: {holdout_percent: 50}
goal: {event: Order Completed, condition: "event.properties.revenue > 10", within: 3d}
steps:
  - {id: hi, type: send, channel: email, template: hi}
"""


def test_holdout_gets_nothing_but_is_counted_and_converts() -> None:
    people = [profile(f"p{i}") for i in range(40)]
    s = sim(GOAL, *people)
    for p in people:
        s.event(track("Signed Up", f"s-{p.profile_id}", p.profile_id))
        s.event(track("Order Completed", f"o-{p.profile_id}", p.profile_id, revenue=50),
                START + timedelta(days=1))  # fmt: skip
    held = [p.profile_id for p in people if in_holdout("g", p.profile_id, 50)]
    assert 0 < len(held) < 40
    assert {d.profile_id for d in s.sent()} == {p.profile_id for p in people} - set(held)
    assert s.counters[("g", 1, "", "entered", "holdout")] == len(held)
    assert s.counters[("g", 1, "", "converted", "holdout")] == len(held)
    assert s.counters[("g", 1, "", "converted", "treatment")] == 40 - len(held)


def test_goal_outside_the_window_or_failing_its_condition_is_not_a_conversion() -> None:
    s = sim(GOAL.replace("holdout_percent: 50", "holdout_percent: 0"))
    s.event(track("Signed Up", "m1"))
    s.event(track("Order Completed", "m2", revenue=5), START + timedelta(days=1))
    s.event(track("Order Completed", "m3", revenue=50), START + timedelta(days=4))
    assert s.counters[("g", 1, "", "converted", "treatment")] == 0


def test_re_entry_rules_and_concurrency() -> None:
    base = """
id: r
name: R
version: 1
trigger: {event: Go}
entry: ENTRY
steps:
  - {id: w, type: wait, duration: 1h}
  - {id: s, type: send, channel: email, template: t}
"""
    cases = {
        "{re_entry: once}": 1,
        "{re_entry: always, max_concurrent: 1}": 2,  # the second Go comes while one runs
        "{re_entry: always, max_concurrent: null}": 3,
        "{re_entry: after, re_entry_after: 1d, max_concurrent: null}": 2,
    }
    for entry, expected in cases.items():
        s = sim(base.replace("ENTRY", entry))
        s.event(track("Go", "m1"))
        s.event(track("Go", "m2"), START + timedelta(minutes=10))
        s.event(track("Go", "m3"), START + timedelta(days=2))
        s.run_for(timedelta(days=3))
        assert len(s.sent()) == expected, entry


def test_audience_segment_is_required_to_enter() -> None:
    s = sim(
        """
id: aud
name: A
version: 1
trigger: {event: Go}
entry: {audience: vip}
steps: [{id: s, type: send, channel: email, template: t}]
""",
        profile("in"),
        profile("out"),
    )
    s.facts["in"].segments.add("vip")
    s.event(track("Go", "m1", "in"))
    s.event(track("Go", "m2", "out"))
    assert [d.profile_id for d in s.sent()] == ["in"]


def test_date_segment_and_schedule_triggers() -> None:
    birthday = sim(
        """
id: bday
name: B
version: 1
trigger: {date_attribute: birthday, yearly: true, at: "09:00"}
steps: [{id: s, type: send, channel: email, template: t}]
""",
        profile(birthday="1990-03-05"),
    )
    birthday.run_for(timedelta(days=400))
    assert [d.requested_at.date().isoformat() for d in birthday.sent()] == [
        "2026-03-05", "2027-03-05"]  # fmt: skip
    tier = sim("""
id: tier
name: T
version: 1
trigger: {segment: loyalty-premium}
steps: [{id: s, type: send, channel: email, template: t}]
""")
    tier.segment("p1", "loyalty-bronze", "entered")
    tier.segment("p1", "loyalty-premium", "entered")
    assert len(tier.sent()) == 1
    weekly = sim(
        """
id: weekly
name: W
version: 1
trigger: {schedule: "0 9 * * 1", segment: lapsed}
steps: [{id: s, type: send, channel: email, template: t}]
""",
        profile("a"),
        profile("b"),
    )
    weekly.facts["a"].segments.add("lapsed")
    weekly.run_for(timedelta(days=14))
    assert [d.profile_id for d in weekly.sent()] == ["a", "a"]


def test_time_scale_shrinks_waits() -> None:
    s = sim(CART, scale=0.001)
    s.event(track("Checkout Started", "m1", cart_id="c1"))
    s.run_for(timedelta(seconds=20))  # 4h30m scaled by 1/1000 is 16.2s
    assert len(s.sent()) == 1


def test_an_awaited_event_arriving_while_paused_is_taken_on_resume() -> None:
    s = sim(CART.replace("exit_on: [{event: Order Completed, match: [cart_id]}]\n", ""))
    s.event(track("Checkout Started", "m1", cart_id="c1"))
    s.run_for(timedelta(hours=1))  # now waiting for the order
    inst = s.of("p1")[0]
    order = track("Order Completed", "m2", cart_id="c1")
    fx = Effects()
    s.engine.on_event(s.cj, inst, order, s.profiles["p1"], s.now, fx, held=True)
    assert inst.active
    assert fx.dispatches == []
    s.run_for(timedelta(days=1))  # the timeout fires after the resume: the event path wins
    assert s.sent() == []
    assert inst.reason == "exit step"
