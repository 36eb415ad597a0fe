"""Routes of the hosted survey page: `GET /v1/surveys/<token>` shows the question (a score in
the link, `?score=9`, as an email's row of numbers sends, is only preselected: mail scanners
follow links, so nothing is recorded on GET); `POST` records the answer by the ingestion path
(`ingest.prepare` + `to_record` onto `jm.events`), exactly as `POST /v1/track` would."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.profile import repository
from services.profile.ingest import prepare, to_record
from services.profile.links import signer
from services.profile.pages import _bad_link, _form, _gone, _page
from services.profile.repository import pg
from services.profile.settings import ProfileSettings
from services.profile.surveys import (
    ENDS,
    QUESTIONS,
    SURVEY,
    InvalidAnswer,
    SurveyLink,
    answer_message,
    parse_answer,
)
from shared.events import InvalidEvent
from shared.runtime import Runtime
from shared.signing import InvalidLink

SURVEY_STYLE = (
    ".scale{display:flex;flex-wrap:wrap;gap:.3rem;margin:1rem 0}"
    ".scale label{border:1px solid #888;border-radius:.3rem;padding:.5rem .7rem;cursor:pointer}"
    ".ends{display:flex;justify-content:space-between;color:#555;font-size:.9rem}"
    "textarea{width:100%;min-height:5rem}"
)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _answered(request: Request, link: SurveyLink) -> bool:
    """The answer was already recorded (the profile consumer has applied its messageId)."""
    async with _runtime(request).engine.connect() as conn:
        found = await (await pg(conn)).fetchval(
            "SELECT 1 FROM profile.processed_messages WHERE message_id = $1", link.message_id
        )
    return found is not None


def _thanks() -> HTMLResponse:
    return _page("Thank you", "<p>Your answer has been recorded. Thank you for your time.</p>")


def _question(link: SurveyLink, chosen: int | None, error: str | None = None) -> HTMLResponse:
    low, high = ENDS[link.survey]
    options = "".join(
        f'<label><input type=radio name=score value="{n}" aria-label="{n}"'
        f"{' checked' if n == chosen else ''} required> {n}</label>"
        for n in link.choices
    )
    problem = f"<p role=alert><strong>{escape(error)}</strong></p>" if error else ""
    body = (
        f"<style>{SURVEY_STYLE}</style>{problem}<form method=post>"
        f"<p>{escape(QUESTIONS[link.survey])}</p><div class=scale>{options}</div>"
        f"<div class=ends><span>{escape(low)}</span><span>{escape(high)}</span></div>"
        "<p><label for=comment>Anything you would like to add? (optional)</label></p>"
        "<textarea id=comment name=comment maxlength=1000></textarea>"
        "<p><button type=submit>Send my answer</button></p></form>"
    )
    return _page("One question", body, 400 if error else 200)


def build_survey_router(settings: ProfileSettings) -> APIRouter:
    router = APIRouter(tags=["customer pages"])

    def verify(token: str) -> SurveyLink:
        data = signer(settings, SURVEY).verify(token, settings.survey_link_max_age_s)
        return SurveyLink.of(data)

    @router.get("/v1/surveys/{token}", response_class=HTMLResponse)
    async def survey_page(request: Request, token: str, score: int | None = None) -> HTMLResponse:
        """The question; nothing is recorded on GET."""
        try:
            link = verify(token)
        except InvalidLink as exc:
            return _bad_link(exc)
        if await _answered(request, link):
            return _thanks()
        return _question(link, score)

    @router.post("/v1/surveys/{token}", response_class=HTMLResponse)
    async def answer(request: Request, token: str) -> HTMLResponse:
        """Record the answer once per dispatch, as a `Survey Responded` track event."""
        try:
            link = verify(token)
        except InvalidLink as exc:
            return _bad_link(exc)
        form = await _form(request)
        try:
            score, comment = parse_answer(link, form)
        except InvalidAnswer as exc:
            return _question(link, None, str(exc))
        if await _answered(request, link):
            return _thanks()
        runtime = _runtime(request)
        async with runtime.engine.connect() as conn:
            state = await repository.get_profile(conn, link.profile_id)
        if state is None or not (state.user_id or state.anonymous_id):
            return _gone()
        identity = {"userId": state.user_id} if state.user_id else {}
        if not identity and state.anonymous_id:
            identity = {"anonymousId": state.anonymous_id}
        message = answer_message(link, identity, score, comment, datetime.now(UTC))
        try:
            event = prepare(message, "track")
        except InvalidEvent as exc:  # cannot happen with a valid link; never a 500 regardless
            return _page("This answer could not be recorded", f"<p>{escape(str(exc))}</p>", 400)
        await runtime.producer.send(to_record(event, request.headers.get("traceparent")))
        return _thanks()

    return router
