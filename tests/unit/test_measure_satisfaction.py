"""NPS, CSAT and CES on a fixed set of answers equal the table computed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from services.profile.satisfaction import ces, ces_on_seven, csat, histogram, in_scale, nps

# survey -> (answers, hand-computed result)
TABLE: dict[str, tuple[list[float], dict[str, Any]]] = {
    # promoters 10,10,9,9,9 (5); passives 8,7 (2); detractors 6,5,0,3 (4); 11 and 4.5 are not
    # answers an NPS question allows. NPS = 100 * (5 - 4) / 11; mean = 76 / 11.
    "nps": (
        [10, 10, 9, 9, 9, 8, 7, 6, 5, 0, 3, 11, 4.5],
        {"responses": 11, "score": 9.09, "mean": 6.9091, "promoters": 5, "passives": 2,
         "detractors": 4, "ignored": 2},
    ),
    # satisfied 5,5,4,4,5 (5 of 8) = 62.5 %; mean 29 / 8; 0 and 6 are off the 1-5 scale.
    "csat": (
        [5, 5, 4, 4, 3, 2, 1, 5, 0, 6],
        {"responses": 8, "score": 62.5, "mean": 3.625, "satisfied": 5, "unsatisfied": 3,
         "ignored": 2},
    ),
    # on 1-7: 7, 6, 5, 4, 2 and a 1-5 answer of 3 (= 4 on 1-7): mean 28 / 6; 0 is off scale.
    "ces": (
        [7, 6, 5, 4, 2, ces_on_seven(3, 5), 0],
        {"responses": 6, "score": 4.6667, "mean": 4.6667, "easy": 3, "difficult": 1,
         "ignored": 1},
    ),
}  # fmt: skip
SCORERS = {"nps": nps, "csat": csat, "ces": ces}


@pytest.mark.parametrize("survey", list(TABLE))
def test_scores_equal_the_hand_computed_table(survey: str) -> None:
    answers, expected = TABLE[survey]
    result = SCORERS[survey](histogram(answers)).as_dict()
    assert {k: result[k] for k in expected} == expected
    assert result["survey"] == survey


def test_no_answers_means_no_score_rather_than_zero() -> None:
    assert nps({}).value is None
    assert csat({}).mean is None
    assert ces({}).responses == 0


def test_all_promoters_is_plus_100_and_all_detractors_minus_100() -> None:
    assert nps({10: 3}).value == 100
    assert nps({0: 2, 6: 1}).value == -100


def test_ces_on_a_five_point_scale_is_stretched_onto_seven() -> None:
    assert [ces_on_seven(s, 5) for s in (1, 2, 3, 4, 5)] == [1, 2.5, 4, 5.5, 7]
    assert ces_on_seven(6, 7) == 6
    assert in_scale("ces", 5, scale=5)
    assert not in_scale("ces", 6, scale=5)
    assert in_scale("ces", 6)
    assert not in_scale("nps", 7.5)
