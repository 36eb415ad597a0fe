"""Identity resolution decides profiles for a batch with no database."""

from __future__ import annotations

import itertools

from services.profile.identity import resolve
from shared.events import parse_event


def _ids() -> itertools.count[int]:
    return itertools.count(1)


def test_anonymous_visitor_who_logs_in_keeps_one_profile() -> None:
    counter = _ids()
    events = [
        parse_event({"type": "page", "messageId": "1", "anonymousId": "a1"}),
        parse_event({"type": "identify", "messageId": "2", "anonymousId": "a1", "userId": "u1"}),
        parse_event(
            {"type": "track", "messageId": "3", "userId": "u1", "event": "Order Completed"}
        ),
    ]
    result = resolve(events, {}, new_id=lambda: f"p{next(counter)}")
    assert result.profile_of_event == ["p1", "p1", "p1"]
    assert result.new_identities == {"anon:a1": "p1", "user:u1": "p1"}


def test_known_identities_are_reused() -> None:
    event = parse_event({"type": "track", "messageId": "1", "userId": "u1", "event": "X"})
    result = resolve([event], {"user:u1": "existing"}, new_id=lambda: "new")
    assert result.profile_of_event == ["existing"]
    assert not result.new_profiles


def test_alias_attaches_previous_anonymous_id() -> None:
    event = parse_event({"type": "alias", "messageId": "1", "userId": "u2", "previousId": "a9"})
    result = resolve([event], {"anon:a9": "p-anon"}, new_id=lambda: "new")
    assert result.profile_of_event == ["p-anon"]
    assert result.new_identities == {"user:u2": "p-anon"}
