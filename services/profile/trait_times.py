"""When each trait was last set, kept in the profile's internal state so a late identify never
overwrites a newer value (last write wins per trait, by event time).

An identify sets several traits at one time, so the times are stored grouped,
`{stamp: [trait, ...]}`: one stamp per identify rather than one per trait (five traits set
together take ~60 characters instead of ~190; the row is rewritten on every event). Profiles
written before hold `trait_times`, `{trait: stamp}`; it is read and replaced by the grouped
form the next time traits are set.
"""

from __future__ import annotations

from typing import Any

KEY = "traits_at"
LEGACY_KEY = "trait_times"


def trait_times(internal: dict[str, Any]) -> dict[str, str]:
    """{trait: stamp of its last change}."""
    times: dict[str, str] = dict(internal.get(LEGACY_KEY) or {})
    for stamp, names in (internal.get(KEY) or {}).items():
        for name in names:
            times[name] = stamp
    return times


def store_trait_times(internal: dict[str, Any], times: dict[str, str]) -> None:
    grouped: dict[str, list[str]] = {}
    for name, stamp in times.items():
        grouped.setdefault(stamp, []).append(name)
    internal.pop(LEGACY_KEY, None)
    internal[KEY] = grouped
