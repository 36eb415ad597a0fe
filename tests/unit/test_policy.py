"""The send policy refuses anything without consent or an address."""

from __future__ import annotations

from collections.abc import Mapping

from services.channels.policy import decide


def _profile(consent: Mapping[str, object], **traits: object) -> dict[str, object]:
    return {"traits": {"email": "a@example.com", **traits}, "consent": consent}


def test_marketing_needs_an_explicit_grant() -> None:
    assert not decide(_profile({}), "email", "marketing").send
    granted = {"email": {"marketing": {"granted": True}}}
    assert decide(_profile(granted), "email", "marketing").send
    refused = {"email": {"marketing": {"granted": False}}}
    assert decide(_profile(refused), "email", "marketing").reason == "no consent"


def test_transactional_goes_unless_refused() -> None:
    assert decide(_profile({}), "email", "transactional").send
    refused = {"email": {"all": {"granted": False}}}
    assert not decide(_profile(refused), "email", "transactional").send


def test_unsubscribed_and_erased_and_no_address() -> None:
    granted = {"email": {"marketing": {"granted": True}}}
    assert not decide(_profile(granted, unsubscribed=True), "email", "marketing").send
    assert decide(_profile(granted, erased=True), "email", "marketing").reason == "erased"
    assert decide({"traits": {}, "consent": granted}, "email", "marketing").reason == "no address"
