"""The hosted survey page on the real broker and database: a signed link shows the question,
nothing is recorded on GET, the answer becomes one `Survey Responded` event per dispatch
(however often it is sent), and forged, re-purposed, expired or out-of-scale answers are
refused with nothing sent."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from services.profile.app import create_app
from services.profile.surveys import SurveyLink
from shared.settings import Settings
from shared.signing import LinkSigner
from shared.topics import EVENTS
from tests.helpers import eventually, running, total_records

pytestmark = pytest.mark.integration
READ = {"Authorization": "Bearer ops-read"}


def _token(settings: Settings, payload: dict[str, Any], purpose: str = "survey") -> str:
    """As channels signs a survey link (the cross-team agreement)."""
    return LinkSigner(settings.link_secret.get_secret_value(), purpose).sign(payload)


def _old_token(settings: Settings, payload: dict[str, Any], age_s: int) -> str:
    """A link signed `age_s` seconds ago: the signer's clock moved back, no sleeping."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:  # the clock itsdangerous stamps tokens with
            return int(time.time()) - age_s

    serializer = URLSafeTimedSerializer(
        settings.link_secret.get_secret_value(), salt="journeyman:survey", signer=PastSigner
    )
    return serializer.dumps(payload)


async def _survey_answers(client: httpx.AsyncClient, profile_id: str) -> list[dict[str, Any]]:
    page = await client.get(
        f"/v1/profiles/{profile_id}/timeline", params={"event": "Survey Responded"}, headers=READ
    )
    items: list[dict[str, Any]] = page.json()["items"]
    return items


async def test_one_answer_per_dispatch_through_the_ingestion_path(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    user = f"nps-{run}"
    async with running(create_app(settings)) as client:
        ok = await client.post("/v1/identify", json={"userId": user, "traits": {"name": "Ada"}},
                               auth=("wk-test", ""))  # fmt: skip
        assert ok.status_code == 200

        async def profile() -> dict[str, Any] | None:
            found = await client.get(f"/v1/profiles/user:{user}", headers=READ)
            return found.json() if found.status_code == 200 else None

        profile_id = (await eventually(profile, what="the profile"))["profile_id"]
        payload = {"profile_id": profile_id, "survey": "nps", "journey_id": "post-purchase",
                   "step_id": "ask-nps", "dispatch_id": f"d-{run}"}  # fmt: skip
        token = _token(settings, payload)

        before = await total_records(settings, EVENTS)
        page = await client.get(f"/v1/surveys/{token}", params={"score": 9})
        assert page.status_code == 200
        assert "recommend us" in page.text
        assert 'value="9" aria-label="9" checked' in page.text  # preselected, not recorded
        assert await total_records(settings, EVENTS) == before

        first = await client.post(f"/v1/surveys/{token}", data={"score": "9", "comment": "Fast!"})
        again = await client.post(f"/v1/surveys/{token}", data={"score": "3"})
        assert first.status_code == again.status_code == 200
        assert "Thank you" in first.text

        async def recorded() -> list[dict[str, Any]] | None:
            return await _survey_answers(client, profile_id) or None

        answers = await eventually(recorded, what="the survey answer")
        link = SurveyLink.of(payload)
        # Both posts reached jm.events with the same messageId; the consumer kept one.
        assert len(await _survey_answers(client, profile_id)) == 1
        answer = answers[0]
        assert answer["message_id"] == link.message_id
        props = answer["payload"]["properties"]
        assert props["survey"] == "nps"
        assert props["score"] in (9, 3)
        assert {k: props[k] for k in ("journey_id", "step_id", "dispatch_id")} == {
            "journey_id": "post-purchase", "step_id": "ask-nps", "dispatch_id": f"d-{run}",
        }  # fmt: skip
        assert answer["payload"]["userId"] == user

        # Once applied, the link says so and sends nothing more.
        sent = await total_records(settings, EVENTS)
        third = await client.post(f"/v1/surveys/{token}", data={"score": "10"})
        assert "Thank you" in third.text
        revisit = await client.get(f"/v1/surveys/{token}")
        assert "already" in revisit.text or "recorded" in revisit.text
        assert await total_records(settings, EVENTS) == sent
        profile_now = await profile()
        assert profile_now is not None
        assert profile_now["behaviour"]["last_nps_score"] == props["score"]


async def test_forged_repurposed_expired_and_bad_answers_are_refused(settings: Settings) -> None:
    payload = {"profile_id": "p-1", "survey": "csat", "journey_id": "j", "step_id": "s",
               "dispatch_id": "d-1"}  # fmt: skip
    good = _token(settings, payload)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    wrong_key = LinkSigner("another-secret", "survey").sign(payload)
    unsubscribe = _token(settings, payload, purpose="unsubscribe")
    expired = _old_token(settings, payload, age_s=settings.survey_link_max_age_s + 60)
    no_dispatch = _token(settings, {**payload, "dispatch_id": None})
    async with running(create_app(settings)) as client:
        before = await total_records(settings, EVENTS)
        for token in (forged, wrong_key, unsubscribe, no_dispatch):
            for response in (
                await client.get(f"/v1/surveys/{token}"),
                await client.post(f"/v1/surveys/{token}", data={"score": "5"}),
            ):
                assert response.status_code == 400
                assert "not valid" in response.text
        stale = await client.post(f"/v1/surveys/{expired}", data={"score": "5"})
        assert stale.status_code == 400
        assert "expired" in stale.text
        off_scale = await client.post(f"/v1/surveys/{good}", data={"score": "6"})
        assert off_scale.status_code == 400
        assert "score: choose a whole number from 1 to 5" in off_scale.text
        assert (await client.post(f"/v1/surveys/{good}", data={})).status_code == 400
        # A valid link for a customer we do not know (erased): nothing to record.
        gone = await client.post(f"/v1/surveys/{good}", data={"score": "5"})
        assert gone.status_code == 404
        assert await total_records(settings, EVENTS) == before
