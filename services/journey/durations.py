"""Durations as marketers write them: `30m`, `4h`, `3d`, `2w`, `1d12h`, or ISO 8601 `P3DT4H`."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field

_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
PATTERN = r"^(\d+[wdhms])+$|^P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$"


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> timedelta:
    """`1d12h` -> 36 hours; raises ValueError on anything else (or on zero). Remembered: a
    journey's few durations are parsed once, not once per instance moved."""
    match = _SHORT.match(text) or _ISO.match(text)
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration (write e.g. 30m, 4h, 3d, 2w or P3D)")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    # The pattern is for editors; validation gives the marketer a readable message instead.
    Field(json_schema_extra={"pattern": PATTERN}, examples=["30m", "4h", "3d", "P1W"]),
    AfterValidator(_check),
]
"""A duration field: kept as written (for the schema and error messages), parsed on use."""
