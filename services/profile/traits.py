"""Typed traits: the few traits other services compute with (email and phone are identities and
addresses, birthday feeds date triggers, time zone feeds quiet hours and "9:00 local", language
picks templates) are normalised to one form at the edge, and a value that cannot be read is an
error naming the trait, not a silent surprise three services later.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LANGUAGE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))*$")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
BIRTHDAY_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d")


class InvalidTrait(ValueError):
    """A typed trait whose value cannot be read; the message starts with `traits.<name>`."""


def normalise_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise InvalidTrait("traits.email: not an email address")
    return value.strip().lower()


def normalise_phone(value: Any) -> str:
    """E.164 when the number has a country code (`+` or `00`), else the digits as given."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidTrait("traits.phone: must be a string")
    raw = _PHONE_NOISE.sub("", value.strip())
    international = raw.startswith("+") or raw.startswith("00")
    digits = raw[1:] if raw.startswith("+") else raw[2:] if raw.startswith("00") else raw
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise InvalidTrait("traits.phone: not a phone number (6 to 15 digits, optional +)")
    return f"+{digits}" if international else digits


def normalise_birthday(value: Any) -> str:
    """An ISO date (`YYYY-MM-DD`); a datetime keeps its date."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 10 and text[10] in "T ":
            text = text[:10]
        if len(text) == 10 and text[4] == text[7] == "-" and text.isascii():
            try:  # the common form, read without strptime's cost (~10 µs)
                return date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        for fmt in BIRTHDAY_FORMATS:
            try:
                return datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
    raise InvalidTrait("traits.birthday: not a date (YYYY-MM-DD)")


def normalise_timezone(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        try:
            return ZoneInfo(value.strip()).key
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise InvalidTrait("traits.timezone: not an IANA time zone such as Europe/Paris")


def normalise_language(value: Any) -> str:
    """BCP 47 case: `fr`, `fr-BE`, `zh-Hant-TW`; `en_US` becomes `en-US`."""
    if isinstance(value, str) and _LANGUAGE.match(value.strip()):
        parts = re.split(r"[-_]", value.strip())
        out = [parts[0].lower()]
        for part in parts[1:]:
            out.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part)
        return "-".join(out)
    raise InvalidTrait("traits.language: not a language tag such as en or fr-BE")


def _boolean(name: str) -> Any:
    def check(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise InvalidTrait(f"traits.{name}: must be true or false")

    return check


NORMALISERS = {
    "email": normalise_email,
    "phone": normalise_phone,
    "birthday": normalise_birthday,
    "timezone": normalise_timezone,
    "language": normalise_language,
    "unsubscribed": _boolean("unsubscribed"),
}
ALIASES = {"time_zone": "timezone", "timeZone": "timezone", "birthdate": "birthday"}


def normalise_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Typed traits in their one form (`null` clears a trait); raises InvalidTrait."""
    out: dict[str, Any] = {}
    for name, value in traits.items():
        key = ALIASES.get(name, name)
        check = NORMALISERS.get(key)
        out[key] = value if check is None or value is None else check(value)
    return out


def identity_keys(traits: dict[str, Any]) -> list[str]:
    """Identities carried by (normalised) traits: `email:<address>`, `phone:<number>`."""
    keys = []
    for kind in ("email", "phone"):
        value = traits.get(kind)
        if isinstance(value, str) and value:
            keys.append(f"{kind}:{value}")
    return keys


def normalise_identifier(identifier: str) -> str:
    """An ops lookup key in the form identities are stored (`email:Ada@X.org` → lower case)."""
    kind, _, value = identifier.partition(":")
    try:
        if kind == "email":
            return f"email:{normalise_email(value)}"
        if kind == "phone":
            return f"phone:{normalise_phone(value)}"
    except InvalidTrait:
        return identifier
    return identifier
