"""The send policy: consent, suppression, quiet hours, caps and priority, with no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from services.channels.policy import (
    Candidate,
    CapRule,
    Facts,
    OptOut,
    PolicyConfig,
    QuietHours,
    consents,
    decide_batch,
    decide_one,
    parse_window,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MARKETING = {"email": {"marketing": {"granted": True, "at": "2026-01-01T00:00:00+00:00"}}}
WEEKLY_3 = PolicyConfig(caps=(CapRule("email", "marketing", 3, timedelta(days=7)),))


def _profile(consent: Mapping[str, object], **traits: object) -> dict[str, Any]:
    return {"traits": {"email": "a@example.com", **traits}, "consent": consent}


def _candidate(i: int = 0, priority: int = 0, message_type: str = "marketing") -> Candidate:
    return Candidate(f"d{i}", "p", "email", message_type, priority, NOW + timedelta(seconds=i))


DEFAULT = PolicyConfig()


def _decide(profile: dict[str, Any], config: PolicyConfig = DEFAULT, **kw: Any) -> Any:
    return decide_one(_candidate(**kw), Facts(profiles={"p": profile}), config, NOW)


def test_marketing_needs_an_explicit_grant() -> None:
    assert _decide(_profile({})).reason == "no consent"
    assert _decide(_profile(MARKETING)).send
    refused = {"email": {"marketing": {"granted": False}}}
    assert _decide(_profile(refused)).reason == "no consent"


def test_transactional_goes_unless_refused() -> None:
    assert _decide(_profile({}), message_type="transactional").send
    refused = {"email": {"all": {"granted": False}}}
    assert not _decide(_profile(refused), message_type="transactional").send


def test_unsubscribed_erased_no_address_and_suppressed_address() -> None:
    assert _decide(_profile(MARKETING, unsubscribed=True)).reason == "no consent"
    assert _decide(_profile(MARKETING, erased=True)).reason == "erased"
    assert _decide({"traits": {}, "consent": MARKETING}).reason == "no address"
    facts = Facts(profiles={"p": _profile(MARKETING)}, suppressed={("email", "a@example.com")})
    assert decide_one(_candidate(), facts, PolicyConfig(), NOW).reason == "suppressed address"


def test_an_optout_wins_over_an_older_grant_but_not_a_newer_one() -> None:
    profile = _profile(MARKETING)
    later = OptOut("email", "marketing", "2026-02-01T00:00:00+00:00")
    assert not consents(profile, "email", "marketing", [later])
    earlier = OptOut("email", "marketing", "2025-12-01T00:00:00+00:00")
    assert consents(profile, "email", "marketing", [earlier])
    assert consents(profile, "email", "transactional", [later])


def test_quiet_hours_defer_to_the_morning_in_the_customers_zone() -> None:
    config = PolicyConfig(quiet_hours=QuietHours(time(21), time(8)))
    # 12:00 UTC is 23:00 in Sydney (UTC+11 in March): deferred to 08:00 there, 21:00 UTC
    sydney = _decide(_profile(MARKETING, timezone="Australia/Sydney"), config)
    assert sydney.outcome == "deferred"
    assert sydney.reason == "quiet hours"
    assert sydney.not_before == datetime(2026, 3, 10, 21, 0, tzinfo=UTC)
    assert _decide(_profile(MARKETING, timezone="Europe/Paris"), config).send
    # 03:00 in Los Angeles (PDT since March 8): deferred to 08:00 the same day, 15:00 UTC
    la = _decide(_profile(MARKETING, timezone="America/Los_Angeles"), config).not_before
    assert la == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert _decide(_profile(MARKETING, timezone="Australia/Sydney"), config,
                   message_type="transactional").send  # fmt: skip


def test_caps_count_the_batch_and_defer_to_when_a_slot_frees() -> None:
    sent = [("email", "marketing", NOW - timedelta(days=d)) for d in (6, 2)]
    facts = Facts(profiles={"p": _profile(MARKETING)}, sent={"p": sent})
    decided = decide_batch([_candidate(1), _candidate(2)], facts, WEEKLY_3, NOW)
    assert decided["d1"].send
    assert decided["d2"].outcome == "deferred"
    assert decided["d2"].reason == "capped: 3 per 7d"
    assert decided["d2"].not_before == NOW + timedelta(days=1)  # the 6-day-old send expires


def test_priority_decides_who_wins_the_last_slot() -> None:
    facts = Facts(profiles={"p": _profile(MARKETING)})
    batch = [_candidate(i, priority=p) for i, p in enumerate((1, 5, 3, 9))]
    decided = decide_batch(batch, facts, WEEKLY_3, NOW)
    assert {d for d, x in decided.items() if x.send} == {"d3", "d1", "d2"}
    assert decided["d0"].outcome == "deferred"


def test_dropping_caps_and_exempt_types() -> None:
    drop = PolicyConfig(caps=(CapRule("email", "*", 1, timedelta(hours=24), "drop"),))
    facts = Facts(profiles={"p": _profile(MARKETING)})
    decided = decide_batch(
        [_candidate(1), _candidate(2), _candidate(3, message_type="transactional")],
        facts, drop, NOW,
    )  # fmt: skip
    assert decided["d1"].send
    assert (decided["d2"].outcome, decided["d2"].reason) == ("suppressed", "capped: 1 per 1d")
    assert decided["d3"].send


def test_windows_parse_or_name_the_mistake() -> None:
    assert parse_window("7d") == timedelta(days=7)
    assert parse_window("90s") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="7 days"):
        parse_window("7 days")


def test_a_journey_may_ignore_frequency_caps_and_still_counts() -> None:
    facts = Facts(profiles={"p": _profile(MARKETING)})
    one = PolicyConfig(caps=(CapRule("email", "marketing", 1, timedelta(days=1)),))
    batch = [_candidate(1), _candidate(2)]
    exempt = Candidate("d3", "p", "email", "marketing", 0, NOW + timedelta(1), ignore_caps=True)
    decided = decide_batch([*batch, exempt], facts, one, NOW)
    assert [decided[d].outcome for d in ("d1", "d2", "d3")] == ["send", "deferred", "send"]
