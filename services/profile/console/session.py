"""Console login: an ops API key (read scope is enough) typed once, then a session cookie
signed with itsdangerous. The cookie holds a fingerprint of the key, never the key, and is
checked against the configured keys on every request, so removing a key logs its sessions out."""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.settings import Settings

COOKIE = "jm_console"


def _fingerprint(key: str) -> str:
    return hashlib.sha256(f"journeyman-console\x00{key}".encode()).hexdigest()[:32]


class Sessions:
    def __init__(self, settings: Settings) -> None:
        self._serializer = URLSafeTimedSerializer(
            settings.link_secret.get_secret_value(), salt="journeyman:console-session"
        )
        self._keys = {_fingerprint(k.key.get_secret_value()) for k in settings.api_keys}
        self.max_age_s = settings.console_session_max_age_s

    def valid_key(self, key: str) -> bool:
        candidate = _fingerprint(key)
        return any(hmac.compare_digest(candidate, known) for known in self._keys)

    def open(self, key: str) -> str | None:
        """A cookie value for a configured key, or None."""
        return self._serializer.dumps({"k": _fingerprint(key)}) if self.valid_key(key) else None

    def check(self, cookie: str | None) -> bool:
        if not cookie:
            return False
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return False
        found = data.get("k") if isinstance(data, dict) else None
        return isinstance(found, str) and any(hmac.compare_digest(found, k) for k in self._keys)
