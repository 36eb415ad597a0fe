"""Signed, expiring links (unsubscribe, preference page, click tracking, surveys): a customer can
use them without a key, nobody can forge or alter them, and they stop working when they expire."""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class InvalidLink(ValueError):
    """A link that was altered, forged, signed for another purpose, or has expired."""


class LinkSigner:
    def __init__(self, secret: str, purpose: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=f"journeyman:{purpose}")

    def sign(self, payload: dict[str, Any]) -> str:
        return self._serializer.dumps(payload)

    def verify(self, token: str, max_age_s: int) -> dict[str, Any]:
        try:
            data = self._serializer.loads(token, max_age=max_age_s)
        except SignatureExpired as exc:
            raise InvalidLink("this link has expired") from exc
        except BadSignature as exc:
            raise InvalidLink("this link is not valid") from exc
        if not isinstance(data, dict):
            raise InvalidLink("this link is not valid")
        return data
