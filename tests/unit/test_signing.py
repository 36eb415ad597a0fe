"""Signed links verify, and refuse tampering, other purposes and expiry."""

from __future__ import annotations

import pytest

from shared.signing import InvalidLink, LinkSigner


def test_round_trip_and_tampering() -> None:
    signer = LinkSigner("secret", "unsubscribe")
    token = signer.sign({"profile_id": "p1", "channel": "email"})
    assert signer.verify(token, max_age_s=60) == {"profile_id": "p1", "channel": "email"}
    with pytest.raises(InvalidLink):
        signer.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), max_age_s=60)
    with pytest.raises(InvalidLink):
        LinkSigner("secret", "preferences").verify(token, max_age_s=60)
    with pytest.raises(InvalidLink):
        LinkSigner("other", "unsubscribe").verify(token, max_age_s=60)


def test_expired_link_is_refused() -> None:
    signer = LinkSigner("secret", "survey")
    token = signer.sign({"profile_id": "p1"})
    with pytest.raises(InvalidLink, match="expired"):
        signer.verify(token, max_age_s=-1)
