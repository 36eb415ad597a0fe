"""The one-question survey a customer reaches from a message. Channels signs the link
(`LinkSigner(link_secret, "survey")` over profile_id, survey, journey_id, step_id, dispatch_id)
and this module reads it, asks the question and turns the answer into the `Survey Responded`
track event the ingestion API would accept.

One answer per dispatch: the event's messageId is derived from the signed payload (survey and
dispatch id), so a second answer, a double click or a re-rendered link for the same message is
the same message, and the profile consumer's messageId dedupe records it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.profile.satisfaction import CES, CSAT, NPS, SCALES
from shared.signing import InvalidLink

SURVEY = "survey"
EVENT = "Survey Responded"
MAX_COMMENT = 1000

QUESTIONS = {
    NPS: "How likely are you to recommend us to a friend or colleague?",
    CSAT: "How satisfied are you with your experience?",
    CES: "How easy was it to get what you needed?",
}
ENDS = {
    NPS: ("Not at all likely", "Extremely likely"),
    CSAT: ("Very unsatisfied", "Very satisfied"),
    CES: ("Very difficult", "Very easy"),
}


@dataclass(frozen=True)
class SurveyLink:
    profile_id: str
    survey: str
    journey_id: str | None
    step_id: str | None
    dispatch_id: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> SurveyLink:
        """The link's signed payload; InvalidLink if it lacks what a survey needs."""
        survey, dispatch = data.get("survey"), data.get("dispatch_id")
        if survey not in QUESTIONS or not isinstance(data.get("profile_id"), str):
            raise InvalidLink("this link is not valid")
        if not isinstance(dispatch, str) or not dispatch:
            raise InvalidLink("this link is not valid")
        journey, step = data.get("journey_id"), data.get("step_id")
        return cls(
            data["profile_id"],
            survey,
            journey if isinstance(journey, str) else None,
            step if isinstance(step, str) else None,
            dispatch,
        )

    @property
    def message_id(self) -> str:
        digest = hashlib.sha256(f"{self.survey}\x00{self.dispatch_id}".encode()).hexdigest()
        return f"survey-{digest[:32]}"

    @property
    def choices(self) -> range:
        low, high = SCALES[self.survey]
        return range(low, high + 1)


class InvalidAnswer(ValueError):
    """An answer the question does not allow (shown to the customer, HTTP 400)."""


def parse_answer(link: SurveyLink, form: dict[str, list[str]]) -> tuple[int, str | None]:
    raw = (form.get("score") or [""])[0].strip()
    if not raw.lstrip("-").isdigit() or int(raw) not in link.choices:
        low, high = link.choices[0], link.choices[-1]
        raise InvalidAnswer(f"score: choose a whole number from {low} to {high}")
    comment = (form.get("comment") or [""])[0].strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidAnswer(f"comment: at most {MAX_COMMENT} characters")
    return int(raw), comment or None


def answer_message(
    link: SurveyLink, identity: dict[str, str], score: int, comment: str | None, now: datetime
) -> dict[str, Any]:
    """The Segment track message of the answer; `identity` is userId or anonymousId."""
    properties: dict[str, Any] = {
        "survey": link.survey,
        "score": score,
        "journey_id": link.journey_id,
        "step_id": link.step_id,
        "dispatch_id": link.dispatch_id,
        "comment": comment,
    }
    if link.survey == CES:
        properties["scale"] = SCALES[CES][1]
    return {
        "type": "track",
        "event": EVENT,
        "messageId": link.message_id,
        "timestamp": now.isoformat(),
        "properties": properties,
        "context": {"channel": "survey-page"},
        **identity,
    }
