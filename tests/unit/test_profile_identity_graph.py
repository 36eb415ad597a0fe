"""The identity graph decides stitching and merges for a batch, with no database."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from services.profile.identity import Merge, resolve
from services.profile.traits import InvalidTrait, normalise_identifier, normalise_traits
from shared.events import Event, parse_event


def _ev(seq: int, **fields: Any) -> Event:
    return parse_event({"type": "track", "event": "X", "messageId": str(seq), **fields})


def _ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"p{next(counter)}"


def test_two_devices_then_login_on_both_merges_the_anonymous_history() -> None:
    events = [
        _ev(1, type="page", anonymousId="phone"),
        _ev(2, type="page", anonymousId="laptop"),
        _ev(3, type="identify", anonymousId="phone", userId="u1"),
        _ev(4, type="identify", anonymousId="laptop", userId="u1"),
    ]
    result = resolve(events, {}, new_id=_ids())
    assert result.profile_of_event == ["p1", "p2", "p1", "p1"]
    assert result.merges == [Merge(3, "p2", "p1")]
    assert result.new_identities == {"anon:phone": "p1", "anon:laptop": "p1", "user:u1": "p1"}


def test_email_names_a_known_profile_and_the_user_profile_survives() -> None:
    event = _ev(1, type="identify", userId="u1", traits={"email": " Ada@Example.org"})
    known = {"user:u1": "pu", "email:ada@example.org": "pa"}
    result = resolve([event], known, users={"pu": "u1", "pa": None})
    assert result.merges == [Merge(0, "pa", "pu")]
    assert result.profile_of_event == ["pu"]


def test_a_shared_device_does_not_fuse_two_customers() -> None:
    event = _ev(1, type="identify", userId="u2", anonymousId="family-pc")
    result = resolve([event], {"anon:family-pc": "p-u1"}, new_id=_ids(), users={"p-u1": "u1"})
    assert result.merges == []
    assert result.profile_of_event == ["p1"]
    assert "anon:family-pc" not in result.new_identities


def test_alias_merges_two_users_explicitly() -> None:
    event = parse_event({"type": "alias", "messageId": "1", "userId": "new", "previousId": "old"})
    known = {"user:new": "pn", "user:old": "po"}
    result = resolve([event], known, users={"pn": "new", "po": "old"})
    assert result.merges == [Merge(0, "po", "pn")]


def test_typed_traits_are_normalised_or_refused_with_their_name() -> None:
    out = normalise_traits(
        {"email": "A@B.co", "phone": "+33 6 12-34-56-78", "birthday": "1990-12-10T00:00:00Z",
         "time_zone": "Europe/Paris", "language": "fr_be", "city": "Lyon"}
    )  # fmt: skip
    assert out == {"email": "a@b.co", "phone": "+33612345678", "birthday": "1990-12-10",
                   "timezone": "Europe/Paris", "language": "fr-BE", "city": "Lyon"}  # fmt: skip
    for trait, value in (("birthday", "31/02/1990"), ("timezone", "Mars/Olympus"),
                         ("email", "nope"), ("language", "english!"), ("phone", "12")):  # fmt: skip
        with pytest.raises(InvalidTrait, match=rf"^traits\.{trait}:"):
            normalise_traits({trait: value})
    assert normalise_identifier("email:Ada@Example.org") == "email:ada@example.org"
