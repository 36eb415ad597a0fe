"""Customer links a message carries, all signed (`shared.signing`), none needing a key:
one-click unsubscribe, open pixel and click redirects are served by this service; the
preference page and survey pages by the profile service (`settings.public_url`).

Click tracking rewrites the `href="http..."` of every `<a>` of the HTML part to a signed
redirect, except our own unsubscribe / preference / survey links (already ours, and mail
scanners must not be sent through a redirect before them)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any

from shared.signing import LinkSigner

UNSUBSCRIBE, PREFERENCES, SURVEY, CLICK, OPEN = (
    "unsubscribe", "preferences", "survey", "click", "open",
)  # fmt: skip
_HREF = re.compile(r"""(<a\b[^>]*?\bhref=)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


@dataclass(frozen=True)
class LinkMaker:
    secret: str
    channels_url: str  # this service, as customers reach it
    profile_url: str  # the profile service, as customers reach it
    _signers: dict[str, LinkSigner] = field(default_factory=dict, compare=False, repr=False)

    def signer(self, purpose: str) -> LinkSigner:
        """One signer per purpose, kept: building one derives its key (a tenth of a send)."""
        found = self._signers.get(purpose)
        if found is None:
            found = self._signers[purpose] = LinkSigner(self.secret, purpose)
        return found

    def for_message(
        self, profile_id: str, dispatch_id: str, *, channel: str, message_type: str,
        journey_id: str, step_id: str, survey: str | None,
    ) -> Mapping[str, str]:  # fmt: skip
        """The message's links, each signed when first read: an SMS or push template that
        shows none costs no signature (signing was a tenth of such a send)."""
        who = {"profile_id": profile_id, "channel": channel, "message_type": message_type}
        makers: dict[str, Callable[[], str]] = {
            "unsubscribe": lambda: self._url(self.channels_url, "t/u", UNSUBSCRIBE,
                                             {**who, "dispatch_id": dispatch_id}),
            "preferences": lambda: self._url(self.profile_url, "v1/preferences", PREFERENCES,
                                             who),
        }  # fmt: skip
        if survey:
            makers["survey"] = lambda: self._url(
                self.profile_url, "v1/surveys", SURVEY,
                {"profile_id": profile_id, "survey": survey, "journey_id": journey_id,
                 "step_id": step_id, "dispatch_id": dispatch_id},
            )  # fmt: skip
        return Links(makers)

    def _url(self, base: str, path: str, purpose: str, payload: dict[str, Any]) -> str:
        return f"{base.rstrip('/')}/{path}/{self.signer(purpose).sign(payload)}"

    def track(self, html: str, dispatch_id: str, opens: bool, clicks: bool) -> str:
        """Rewrite links to signed redirects and add the open pixel."""
        own = (self.channels_url.rstrip("/") + "/t/", self.profile_url.rstrip("/") + "/v1/")
        if clicks:
            click = self.signer(CLICK)

            def rewrite(match: re.Match[str]) -> str:
                url = unescape(match[3])
                if url.startswith(own):
                    return match[0]
                token = click.sign({"d": dispatch_id, "u": url})
                quote = match[2]
                return f"{match[1]}{quote}{self.channels_url.rstrip('/')}/t/r/{token}{quote}"

            html = _HREF.sub(rewrite, html)
        if opens:
            token = self.signer(OPEN).sign({"d": dispatch_id})
            pixel = (
                f'<img src="{self.channels_url.rstrip("/")}/t/o/{token}.gif" width="1" '
                'height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
            )
            at = html.lower().rfind("</body>")
            html = html[:at] + pixel + html[at:] if at >= 0 else html + pixel
        return html


class Links(Mapping[str, str]):
    """Links by name, each made on first read and kept."""

    def __init__(self, makers: dict[str, Callable[[], str]]) -> None:
        self._makers = makers
        self._made: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = self._makers[name]()
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)
