"""The shipped detractor follow-up journey: its trigger condition (CEL, compiled as every
journey's is) picks detractors and low CSAT answers from the survey page, and no one else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.profile.surveys import SurveyLink, answer_message
from shared.cel import Condition

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = yaml.safe_load((ROOT / "journeys" / "detractor-follow-up.yaml").read_text())


def _answer(survey: str, score: int, journey: str = "post-purchase") -> dict[str, Any]:
    link = SurveyLink("p-1", survey, journey, "ask", "d-1")
    return answer_message(link, {"userId": "u-1"}, score, None, datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("survey", "score", "follows_up"),
    [("nps", 0, True), ("nps", 6, True), ("nps", 7, False), ("nps", 10, False),
     ("csat", 1, True), ("csat", 2, True), ("csat", 3, False), ("ces", 1, False)],
)  # fmt: skip
def test_detractors_and_low_csat_trigger_the_follow_up(
    survey: str, score: int, follows_up: bool
) -> None:
    assert JOURNEY["trigger"]["event"] == "Survey Responded"
    condition = Condition(JOURNEY["trigger"]["condition"])
    assert condition.holds({"event": _answer(survey, score), "profile": {}}) is follows_up
    assert JOURNEY["steps"][0]["template"] == "detractor-follow-up"
    assert (ROOT / "templates" / "detractor-follow-up" / "subject.liquid").exists()


def test_post_delivery_survey_answers_are_left_to_that_journey() -> None:
    """That journey branches on the score itself: one follow-up, not two."""
    condition = Condition(JOURNEY["trigger"]["condition"])
    answer = _answer("nps", 2, journey="post-delivery-survey")
    assert condition.holds({"event": answer, "profile": {}}) is False
