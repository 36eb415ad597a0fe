"""Pages a customer reaches from a message, with no key: the one-click unsubscribe link
(RFC 8058: `List-Unsubscribe-Post: List-Unsubscribe=One-Click` POSTs to the same URL; a GET
only shows a confirmation button, so mail scanners that follow links unsubscribe nobody) and
the hosted preference page (channels x message types). The token is signed and carries the
profile id; a merged-away id follows its survivor, an erased customer finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.profile import ops, repository
from services.profile.consent import TRANSACTIONAL, preference_grid
from services.profile.links import PREFERENCES, UNSUBSCRIBE, signer
from services.profile.models import outbox
from services.profile.settings import ProfileSettings
from shared.outbox import OutboxRelay, add_to_outbox
from shared.runtime import Runtime
from shared.signing import InvalidLink

MAX_FORM_BYTES = 16 * 1024
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{padding:.4rem .8rem;border-bottom:1px solid #ddd}"
    "button{padding:.5rem 1.2rem;font-size:1rem}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f'content="width=device-width"><title>{escape(title)}</title><style>{STYLE}</style>'
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status)


async def _form(request: Request) -> dict[str, list[str]]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            break
    return parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))


def _label(channel: str | None, message_type: str | None) -> str:
    what = f"{message_type} " if message_type else ""
    return f"{what}messages by {channel}" if channel else "all but transactional messages"


async def _change(request: Request, identifier: str, req: ops.ConsentRequest) -> bool:
    runtime: Runtime = request.app.state.runtime
    relay: OutboxRelay = runtime.state["profile_relay"]
    try:
        async with relay.transaction(runtime.engine) as conn:
            result = await ops.change_consent(conn, identifier, req, datetime.now(UTC))
            await add_to_outbox(conn, outbox, result.records)
    except ops.ProfileNotFound:
        return False
    return True


def _gone() -> HTMLResponse:
    return _page("Nothing to change", "<p>We hold no data about you any more.</p>", 404)


def _bad_link(exc: InvalidLink) -> HTMLResponse:
    return _page("This link does not work", f"<p>{escape(str(exc))}.</p>", 400)


Verify = Callable[[str, str], dict[str, Any]]


def build_pages_router(settings: ProfileSettings) -> APIRouter:
    router = APIRouter(tags=["customer pages"])
    max_age = settings.unsubscribe_link_max_age_s

    def verify(purpose: str, token: str) -> dict[str, Any]:
        data = signer(settings, purpose).verify(token, max_age)
        if not isinstance(data.get("profile_id"), str):
            raise InvalidLink("this link is not valid")
        return data

    _unsubscribe_routes(router, settings, verify)
    _preference_routes(router, verify)
    return router


def _unsubscribe_routes(router: APIRouter, settings: ProfileSettings, verify: Verify) -> None:
    @router.get("/v1/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """A confirmation button; nothing changes on GET."""
        try:
            data = verify(UNSUBSCRIBE, token)
        except InvalidLink as exc:
            return _bad_link(exc)
        label = escape(_label(data.get("channel"), data.get("message_type")))
        return _page(
            "Unsubscribe",
            f"<p>Stop receiving {label}?</p><form method=post>"
            "<input type=hidden name=List-Unsubscribe value=One-Click>"
            "<button type=submit>Unsubscribe</button></form>",
        )

    @router.post("/v1/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe(request: Request, token: str) -> HTMLResponse:
        """One-click unsubscribe (RFC 8058 body `List-Unsubscribe=One-Click`, or the button)."""
        try:
            data = verify(UNSUBSCRIBE, token)
        except InvalidLink as exc:
            return _bad_link(exc)
        await _form(request)  # RFC 8058 sends a body; nothing in it changes what we do
        channel, message_type = data.get("channel"), data.get("message_type")
        if channel and message_type and message_type != TRANSACTIONAL:
            req = ops.ConsentRequest({channel: {message_type: False}}, "unsubscribe-link")
        elif channel:
            req = ops.ConsentRequest({}, "unsubscribe-link", unsubscribe_channel=channel)
        else:
            req = ops.ConsentRequest({}, "unsubscribe-link", unsubscribed=True)
        if not await _change(request, data["profile_id"], req):
            return _gone()
        preferences = signer(settings, PREFERENCES).sign(data)
        return _page(
            "You are unsubscribed",
            f"<p>You will no longer receive {escape(_label(channel, message_type))}.</p>"
            f'<p><a href="../preferences/{escape(preferences)}">Choose what you receive</a></p>',
        )


def _preference_routes(router: APIRouter, verify: Verify) -> None:
    @router.get("/v1/preferences/{token}", response_class=HTMLResponse)
    async def preferences_page(request: Request, token: str, saved: bool = False) -> HTMLResponse:
        """The customer's channels x message types, as a form."""
        try:
            data = verify(PREFERENCES, token)
        except InvalidLink as exc:
            return _bad_link(exc)
        runtime: Runtime = request.app.state.runtime
        async with runtime.engine.connect() as conn:
            state = await repository.get_profile(conn, data["profile_id"])
        if state is None:
            return _gone()
        grid = preference_grid(state.consent)
        types = [t for t in next(iter(grid.values())) if t != TRANSACTIONAL]
        head = "".join(f"<th>{escape(t)}</th>" for t in types)
        rows = []
        for channel, answers in grid.items():
            cells = "".join(
                f'<td><input type=checkbox name="{escape(channel)}.{escape(t)}" '
                f'aria-label="{escape(channel)} {escape(t)}"{" checked" if answers[t] else ""}>'
                "</td>"
                for t in types
            )
            rows.append(f"<tr><th>{escape(channel)}</th>{cells}</tr>")
        stop = " checked" if state.traits.get("unsubscribed") else ""
        note = "<p><strong>Saved.</strong></p>" if saved else ""
        return _page(
            "Your preferences",
            f"{note}<form method=post><table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
            f"<p><label><input type=checkbox name=unsubscribed{stop}> Send me nothing but "
            "transactional messages (orders, password resets)</label></p>"
            "<button type=submit>Save</button></form>",
        )

    @router.post("/v1/preferences/{token}", response_class=HTMLResponse)
    async def save_preferences(request: Request, token: str) -> HTMLResponse:
        """Checked boxes are grants, unchecked ones refusals; only real changes are recorded."""
        try:
            data = verify(PREFERENCES, token)
        except InvalidLink as exc:
            return _bad_link(exc)
        form = await _form(request)
        runtime: Runtime = request.app.state.runtime
        async with runtime.engine.connect() as conn:
            state = await repository.get_profile(conn, data["profile_id"])
        if state is None:
            return _gone()
        update: dict[str, dict[str, bool]] = {}
        for channel, answers in preference_grid(state.consent).items():
            for message_type in answers:
                if message_type != TRANSACTIONAL:
                    granted = f"{channel}.{message_type}" in form
                    update.setdefault(channel, {})[message_type] = granted
        req = ops.ConsentRequest(update, "preference-page", "unsubscribed" in form)
        if not await _change(request, state.profile_id, req):
            return _gone()
        return await preferences_page(request, token, saved=True)
