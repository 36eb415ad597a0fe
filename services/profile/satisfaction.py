"""Satisfaction scores from `Survey Responded` answers, as the industry defines them:

- NPS: % promoters (9-10) minus % detractors (0-6) on a 0-10 scale, from -100 to 100.
- CSAT: % of satisfied answers (4-5) on a 1-5 scale, and the mean score.
- CES: the mean effort score on a 1-7 scale (CES 2.0); answers given on a 1-5 scale (the
  survey's `scale` property is 5) are mapped linearly onto 1-7 so both can be averaged.

The database hands over a histogram (how many answers gave each score), so a million answers
cost a few rows; these functions turn a histogram into the scores, and ignore (but count)
answers outside the survey's scale.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NPS, CSAT, CES = "nps", "csat", "ces"
SURVEYS = (NPS, CSAT, CES)
CES_SCALE = 7
SCALES: dict[str, tuple[int, int]] = {NPS: (0, 10), CSAT: (1, 5), CES: (1, CES_SCALE)}


def in_scale(survey: str, score: float, scale: int | None = None) -> bool:
    """Whether an answer is a valid whole score of its survey (the survey page's choices)."""
    low, high = SCALES[survey]
    if survey == CES and scale == 5:
        high = 5
    return float(score).is_integer() and low <= score <= high


def ces_on_seven(score: float, scale: int | None) -> float:
    """A CES answer on the 1-7 scale: 1-5 answers are stretched linearly (3 of 5 is 4 of 7)."""
    return 1 + (score - 1) * 6 / 4 if scale == 5 else score


@dataclass(frozen=True)
class Score:
    """One survey's result over a group of answers."""

    survey: str
    responses: int
    value: float | None  # NPS, CSAT %, or CES mean; None without answers
    mean: float | None
    breakdown: dict[str, int]
    ignored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "survey": self.survey,
            "responses": self.responses,
            "score": self.value,
            "mean": self.mean,
            **self.breakdown,
            "ignored": self.ignored,
        }


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 2)


def _valid(survey: str, histogram: Mapping[float, int]) -> tuple[Counter[float], int]:
    kept: Counter[float] = Counter()
    ignored = 0
    for score, count in histogram.items():
        if in_scale(survey, score):
            kept[float(score)] += count
        else:
            ignored += count
    return kept, ignored


def _mean(histogram: Mapping[float, int], total: int) -> float | None:
    return round(sum(s * n for s, n in histogram.items()) / total, 4) if total else None


def nps(histogram: Mapping[float, int]) -> Score:
    kept, ignored = _valid(NPS, histogram)
    total = sum(kept.values())
    promoters = sum(n for s, n in kept.items() if s >= 9)
    detractors = sum(n for s, n in kept.items() if s <= 6)
    value = _pct(promoters - detractors, total) if total else None
    breakdown = {
        "promoters": promoters,
        "passives": total - promoters - detractors,
        "detractors": detractors,
    }
    return Score(NPS, total, value, _mean(kept, total), breakdown, ignored)


def csat(histogram: Mapping[float, int]) -> Score:
    kept, ignored = _valid(CSAT, histogram)
    total = sum(kept.values())
    satisfied = sum(n for s, n in kept.items() if s >= 4)
    value = _pct(satisfied, total) if total else None
    breakdown = {"satisfied": satisfied, "unsatisfied": total - satisfied}
    return Score(CSAT, total, value, _mean(kept, total), breakdown, ignored)


def ces(histogram: Mapping[float, int]) -> Score:
    """`histogram` keys are answers already on the 1-7 scale (see `ces_on_seven`)."""
    kept: Counter[float] = Counter()
    ignored = 0
    for score, count in histogram.items():
        if 1 <= score <= CES_SCALE:
            kept[float(score)] += count
        else:
            ignored += count
    total = sum(kept.values())
    mean = _mean(kept, total)
    easy = sum(n for s, n in kept.items() if s >= 5)
    breakdown = {"easy": easy, "difficult": sum(n for s, n in kept.items() if s <= 3)}
    return Score(CES, total, mean, mean, breakdown, ignored)


SCORERS = {NPS: nps, CSAT: csat, CES: ces}


def score(survey: str, histogram: Mapping[float, int]) -> Score:
    return SCORERS[survey](histogram)


def histogram(scores: Iterable[float]) -> Counter[float]:
    """Raw answers as a histogram (for callers that hold answers, not counts)."""
    return Counter(float(s) for s in scores)
