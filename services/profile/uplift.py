"""Conversion uplift of a journey's treatment group over its holdout (control) group.

The difference of two conversion rates gets Newcombe's hybrid score interval (Newcombe 1998,
method 10: built from each group's Wilson score interval). Unlike the textbook Wald interval it
stays inside [-1, 1] and keeps its coverage with small groups and rates near 0 or 1, which is
what holdouts of a few percent produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt
from statistics import NormalDist
from typing import Any


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of one proportion."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Uplift:
    treatment_rate: float | None
    holdout_rate: float | None
    difference: float | None  # absolute, in rate points (0.04 = +4 points)
    interval: Interval | None
    relative: float | None  # difference / holdout rate
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.interval is not None and (self.interval.low > 0 or self.interval.high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "treatment_rate": self.treatment_rate,
            "holdout_rate": self.holdout_rate,
            "uplift": self.difference,
            "ci_low": self.interval.low if self.interval else None,
            "ci_high": self.interval.high if self.interval else None,
            "relative_uplift": self.relative,
            "confidence": self.confidence,
            "significant": self.significant,
        }


def uplift(
    treated: int, treated_converted: int, held: int, held_converted: int, confidence: float = 0.95
) -> Uplift:
    """Treatment minus holdout conversion rate, with its Newcombe interval. A group with no
    members gives rates of None: there is nothing to compare."""
    if not 0 < confidence < 1:
        raise ValueError("confidence: must be between 0 and 1")
    for name, converted, total in (
        ("treatment", treated_converted, treated),
        ("holdout", held_converted, held),
    ):
        if total < 0 or not 0 <= converted <= max(total, 0):
            raise ValueError(f"{name}: conversions must be between 0 and the group size")
    p1 = treated_converted / treated if treated else None
    p2 = held_converted / held if held else None
    if p1 is None or p2 is None:
        return Uplift(p1, p2, None, None, None, confidence)
    w1 = wilson(treated_converted, treated, confidence)
    w2 = wilson(held_converted, held, confidence)
    d = p1 - p2
    low = d - sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    high = d + sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    relative = d / p2 if p2 else None
    return Uplift(p1, p2, d, Interval(max(-1.0, low), min(1.0, high)), relative, confidence)
