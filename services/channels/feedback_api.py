"""Routes customers and providers reach without an ops key: the open pixel, click redirects,
one-click unsubscribe (RFC 8058: a GET only shows a button, so link scanners unsubscribe
nobody; the `List-Unsubscribe-Post` POST acts), and signed delivery-status webhooks."""

from __future__ import annotations

import base64
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.channels import feedback
from services.channels.links import CLICK, OPEN, UNSUBSCRIBE, LinkMaker
from services.channels.models import outbox
from services.channels.providers import webhook
from services.channels.providers.sms import twilio_signature
from services.channels.settings import ChannelsSettings
from shared.kafka import OutRecord
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime
from shared.signing import InvalidLink

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MAX_BODY = 64 * 1024
TWILIO_STATUS = {"delivered": "delivered", "undelivered": "bounced", "failed": "failed"}
Work = Callable[[AsyncConnection, datetime], Awaitable[list[OutRecord]]]


class StatusReport(BaseModel):
    """A generic provider's delivery report (JSON, signed like our own webhooks)."""

    dispatch_id: str | None = Field(default=None, max_length=500, pattern="^[^\x00]*$")
    provider_message_id: str | None = Field(default=None, max_length=500, pattern="^[^\x00]*$")
    status: str = Field(pattern="^(delivered|bounced|failed)$")
    reason: str | None = Field(default=None, max_length=1000)


async def _apply(request: Request, work: Work) -> None:
    runtime: Runtime = request.app.state.runtime
    now = runtime.state["pipeline"].clock()
    relay: OutboxRelay = runtime.state["channels_relay"]
    async with relay.transaction(runtime.engine) as conn:
        await add_to_outbox(conn, outbox, await work(conn, now))


def build_feedback_router(settings: ChannelsSettings) -> APIRouter:
    router = APIRouter(tags=["customer links and provider webhooks"])
    links = LinkMaker(
        settings.link_secret.get_secret_value(), settings.channels_public_url, settings.public_url
    )
    max_age = settings.link_max_age_s

    def verify(purpose: str, token: str) -> dict[str, Any]:
        return links.signer(purpose).verify(token, max_age)

    @router.get("/t/o/{token}.gif", response_class=Response)
    async def opened(request: Request, token: str) -> Response:
        """The open pixel: a transparent GIF, whatever happens (a broken image helps nobody)."""
        try:
            dispatch_id = str(verify(OPEN, token)["d"])
            await _apply(request, lambda c, now: feedback.engagement(c, dispatch_id, "opened", now))
        except (InvalidLink, KeyError, feedback.UnknownMessage):
            pass
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @router.get("/t/r/{token}", response_class=RedirectResponse, status_code=302)
    async def clicked(request: Request, token: str) -> RedirectResponse:
        """A tracked link: count the click, then go where the link pointed."""
        try:
            data = verify(CLICK, token)
            dispatch_id, url = str(data["d"]), str(data["u"])
        except (InvalidLink, KeyError) as exc:
            raise HTTPException(400, "token: this link is not valid") from exc
        if not url.startswith(("http://", "https://")):
            raise HTTPException(400, "token: this link is not valid")
        with contextlib.suppress(feedback.UnknownMessage):  # still take them where they go
            await _apply(
                request, lambda c, now: feedback.engagement(c, dispatch_id, "clicked", now, url=url)
            )
        return RedirectResponse(url, 302)

    @router.get("/t/u/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """A confirmation button; nothing changes on GET."""
        try:
            data = verify(UNSUBSCRIBE, token)
        except InvalidLink as exc:
            return _page("This link does not work", f"<p>{escape(str(exc))}.</p>", 400)
        what = escape(f"{data.get('message_type') or 'marketing'} messages by "
                      f"{data.get('channel') or 'email'}")  # fmt: skip
        return _page(
            "Unsubscribe",
            f"<p>Stop receiving {what}?</p><form method=post>"
            "<input type=hidden name=List-Unsubscribe value=One-Click>"
            "<button type=submit>Unsubscribe</button></form>",
        )

    @router.post("/t/u/{token}", response_class=HTMLResponse)
    async def unsubscribe(request: Request, token: str) -> HTMLResponse:
        """One-click unsubscribe (RFC 8058 body `List-Unsubscribe=One-Click`, or the button)."""
        try:
            data = verify(UNSUBSCRIBE, token)
            if not isinstance(data.get("profile_id"), str):
                raise InvalidLink("this link is not valid")
        except InvalidLink as exc:
            return _page("This link does not work", f"<p>{escape(str(exc))}.</p>", 400)
        await _body(request)
        await _apply(request, lambda c, now: feedback.unsubscribe(c, data, now))
        return _page("You are unsubscribed", "<p>You will no longer receive these messages.</p>")

    _webhook_routes(router, settings)
    return router


def _webhook_routes(router: APIRouter, settings: ChannelsSettings) -> None:
    @router.post("/t/hooks/twilio", tags=["provider webhooks"])
    async def twilio_status(request: Request) -> dict[str, bool]:
        """Twilio status callback (form-encoded), verified with `X-Twilio-Signature`."""
        params = dict(parse_qsl((await _body(request)).decode("utf-8", "replace")))
        url = f"{settings.channels_public_url.rstrip('/')}/t/hooks/twilio"
        expected = twilio_signature(settings.twilio_auth_token.get_secret_value(), url, params)
        given = request.headers.get("X-Twilio-Signature", "")
        if not hmac.compare_digest(expected, given):
            raise HTTPException(401, "X-Twilio-Signature: does not match")
        status = TWILIO_STATUS.get(params.get("MessageStatus", ""))
        if status is None:
            return {"success": True}  # queued, sent, ...: nothing to record
        sid = params.get("MessageSid")
        if not sid:
            raise HTTPException(400, "MessageSid: required")
        reason = params.get("ErrorCode")
        await _report(request, None, sid, status, f"Twilio error {reason}" if reason else None)
        return {"success": True}

    @router.post("/t/hooks/status", tags=["provider webhooks"])
    async def generic_status(request: Request) -> dict[str, bool]:
        """A delivery report `{dispatch_id | provider_message_id, status, reason}`, signed
        with `X-Journeyman-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body">`."""
        body = await _body(request)
        header = request.headers.get(webhook.SIGNATURE_HEADER, "")
        secret = settings.webhook_secret.get_secret_value()
        if not webhook.verify(secret, body, header, time.time()):
            raise HTTPException(401, f"{webhook.SIGNATURE_HEADER}: does not match")
        try:
            report = StatusReport.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise HTTPException(400, f"{where}: {first['msg']}") from exc
        if not (report.dispatch_id or report.provider_message_id):
            raise HTTPException(400, "dispatch_id: required (or provider_message_id)")
        await _report(
            request, report.dispatch_id, report.provider_message_id, report.status, report.reason
        )
        return {"success": True}


async def _report(
    request: Request, dispatch_id: str | None, provider_id: str | None, status: str,
    reason: str | None,
) -> None:  # fmt: skip
    try:
        await _apply(
            request,
            lambda c, now: feedback.delivery_report(
                c, dispatch_id=dispatch_id, provider_id=provider_id, status=status,
                reason=reason, at=now,
            ),
        )  # fmt: skip
    except feedback.UnknownMessage as exc:
        raise HTTPException(404, f"message {exc}: not found") from exc


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(400, "body: too large (64 KiB at most)")
    return body


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f'content="width=device-width"><title>{escape(title)}</title></head>'
        f'<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status)
