"""What the channels tests share: a movable clock, dispatch records, a profile snapshot, the
channels service wired to the test's database, broker, SMTP inbox and provider servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg

from journeyman.bench.common import asyncpg_dsn
from journeyman.inbox import SmtpInbox
from journeyman.providers import LocalProviders
from services.channels.settings import ChannelsSettings
from shared.codec import dumps
from shared.contracts import DispatchRequest, ProfileSnapshot
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves; the service reads it for every decision."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def snapshot(profile_id: str, version: int = 1, **traits: Any) -> ProfileSnapshot:
    consent = traits.pop("consent", {})
    return ProfileSnapshot(
        profile_id=profile_id, version=version, user_id=f"u-{profile_id}", traits=traits,
        consent=consent, updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def granted(channel: str, *types: str, at: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    return {channel: {t: {"granted": True, "source": "test", "at": at} for t in types}}


def dispatch(
    dispatch_id: str, profile_id: str, *, channel: str = "email", message_type: str = "marketing",
    template: str = "order-thank-you", journey: str = "j", priority: int = 0,
    profile: ProfileSnapshot | None = None, at: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> bytes:  # fmt: skip
    return dumps(
        DispatchRequest(
            dispatch_id=dispatch_id, profile_id=profile_id, channel=channel,
            message_type=message_type, template=template, journey_id=journey, journey_version=1,
            step_id="s1", priority=priority, profile=profile,
            data=data or {"event": {"properties": {"order_id": dispatch_id}}},
            requested_at=at or datetime(2026, 1, 1, tzinfo=UTC),
        ).model_dump(mode="json")
    )  # fmt: skip


@dataclass
class Local:
    inbox: SmtpInbox
    providers: LocalProviders

    def emails(self) -> list[EmailMessage]:
        parser = BytesParser(policy=email_policy.default)
        return [parser.parsebytes(p.read_bytes()) for p in self.inbox.messages()]


@contextmanager
def local_providers(tmp_path: Path) -> Iterator[Local]:
    with SmtpInbox(tmp_path / "inbox") as inbox, LocalProviders() as providers:
        yield Local(inbox, providers)


def channels_settings(settings: Settings, local: Local, **overrides: Any) -> ChannelsSettings:
    return ChannelsSettings.model_validate(
        {
            **settings.model_dump(),
            "service_name": "channels-test",
            "templates_dir": str(ROOT / "templates"),
            "smtp_host": local.inbox.host, "smtp_port": local.inbox.port,
            "twilio_base_url": local.providers.url, "fcm_base_url": local.providers.url,
            "provider_backoff_s": 0.01, "deferred_poll_s": 0.1,
            **overrides,
        }
    )  # fmt: skip


async def attempts(database_url: str) -> dict[str, dict[str, Any]]:
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await db.fetch("SELECT * FROM channels.send_attempts")
    finally:
        await db.close()
    return {r["dispatch_id"]: dict(r) for r in rows}
