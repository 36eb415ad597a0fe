"""Settings of the channels service (same `JOURNEYMAN_` prefix as the shared ones): the send
policy, providers and their credentials, and where customers' links point."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator

from services.channels.policy import CapRule, PolicyConfig, QuietHours, parse_window
from shared.settings import Settings


class CapSetting(BaseModel):
    """One frequency cap, e.g. `{"channel": "email", "message_type": "marketing", "limit": 3,
    "window": "7d", "on_cap": "defer"}`."""

    channel: str = "*"
    message_type: str = "*"
    limit: int = Field(ge=0)
    window: str = Field(description="7d, 24h, 30m or 90s")
    on_cap: Literal["defer", "drop"] = "defer"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    def rule(self) -> CapRule:
        return CapRule(
            self.channel, self.message_type, self.limit, parse_window(self.window), self.on_cap
        )


DEFAULT_CAPS = [CapSetting(channel="email", message_type="marketing", limit=3, window="7d")]


class ChannelsSettings(Settings):
    # --- send policy ---
    caps: list[CapSetting] = Field(
        default_factory=lambda: list(DEFAULT_CAPS),
        description="Frequency caps (JSON list); default at most 3 marketing emails per 7 days.",
    )
    caps_file: str | None = Field(
        default=None, description="A YAML file `caps: [...]` replacing `caps` when set."
    )
    cap_exempt_types: list[str] = Field(
        default_factory=lambda: ["transactional"], description="Message types no cap counts."
    )
    cap_exempt_journeys: list[str] = Field(
        default_factory=list,
        description='Journeys that ignore frequency caps (Braze\'s "ignore frequency capping"); '
        "a step can also set `overrides.ignore_frequency_caps`.",
    )
    quiet_hours_start: time | None = Field(
        default=None, description="Local time quiet hours start, e.g. 21:00 (unset: none)."
    )
    quiet_hours_end: time = Field(default=time(8, 0), description="Local time they end.")
    quiet_hours_exempt_types: list[str] = Field(
        default_factory=lambda: ["transactional"], description="Sent even in quiet hours."
    )
    default_timezone: str = Field(
        default="UTC", description="Time zone of customers without `traits.timezone`."
    )
    retry_unknown_types: list[str] = Field(
        default_factory=lambda: ["transactional"],
        description="Message types whose attempts cut off by a crash are sent again "
        "(a customer may then get one twice; others are never retried).",
    )
    unknown_after_s: float = Field(
        default=120, description="An attempt `sending` this long was cut off by a crash."
    )
    deferred_poll_s: float = Field(default=1.0, description="How often due deferrals are read.")
    send_concurrency: int = Field(default=64, description="Provider calls in flight per process.")
    # --- customer links ---
    channels_public_url: str = Field(
        default="http://127.0.0.1:8004",
        description="Base URL of this service as customers reach it (pixel, clicks, unsubscribe).",
    )
    track_opens: bool = Field(default=True, description="Add a tracking pixel to HTML email.")
    track_clicks: bool = Field(default=True, description="Rewrite links to signed redirects.")
    link_max_age_s: int = Field(default=365 * 24 * 3600, description="How long links work.")
    # --- email ---
    smtp_pool_size: int = Field(default=16, description="SMTP connections kept open.")
    email_rate_per_s: float = Field(default=5_000, description="Token bucket of the SMTP relay.")
    # --- SMS (Twilio-compatible) ---
    twilio_base_url: str = Field(default="https://api.twilio.com", description="Twilio API base.")
    twilio_account_sid: str = Field(default="AC00000000000000000000000000000000")
    twilio_auth_token: SecretStr = Field(default=SecretStr("dev-token"), description="Twilio.")
    sms_from: str = Field(default="+15005550006", description="Sender number or id.")
    sms_rate_per_s: float = Field(default=10_000, description="Token bucket of the SMS API.")
    # --- push (FCM HTTP v1-compatible) ---
    fcm_base_url: str = Field(default="https://fcm.googleapis.com", description="FCM API base.")
    fcm_project: str = Field(default="journeyman-local", description="FCM project id.")
    fcm_token: SecretStr = Field(default=SecretStr("dev-token"), description="OAuth bearer.")
    push_rate_per_s: float = Field(default=10_000, description="Token bucket of the push API.")
    # --- webhook channel and delivery-status callbacks ---
    webhook_secret: SecretStr = Field(
        default=SecretStr("dev-only-webhook-secret"),
        description="HMAC-SHA256 key of `X-Journeyman-Signature` on webhooks we send and of "
        "the generic delivery-status webhook we accept.",
    )
    webhook_rate_per_s: float = Field(default=2_000, description="Token bucket of webhooks.")
    provider_tries: int = Field(default=4, description="Tries per message on transient errors.")
    provider_backoff_s: float = Field(default=0.5, description="First retry delay (doubles).")
    http_connections: int = Field(default=16, description="Keep-alive connections per API.")
    http_timeout_s: float = Field(
        default=10.0,
        description="Longest wait for a provider's answer; a send that times out after it was "
        "handed over is `unknown`, never retried blindly.",
    )

    def policy(self) -> PolicyConfig:
        caps = self.caps
        if self.caps_file:
            loaded = yaml.safe_load(Path(self.caps_file).read_text()) or {}
            caps = [CapSetting.model_validate(c) for c in loaded.get("caps", [])]
        quiet = (
            QuietHours(self.quiet_hours_start, self.quiet_hours_end)
            if self.quiet_hours_start is not None
            else None
        )
        return PolicyConfig(
            caps=tuple(c.rule() for c in caps),
            quiet_hours=quiet,
            quiet_hours_exempt=frozenset(self.quiet_hours_exempt_types),
            cap_exempt=frozenset(self.cap_exempt_types),
            cap_exempt_journeys=frozenset(self.cap_exempt_journeys),
            default_timezone=self.default_timezone,
        )


def channels_settings(settings: Settings | None) -> ChannelsSettings:
    """Accept the shared Settings (tests, the stack) and add the channels fields' defaults."""
    if isinstance(settings, ChannelsSettings):
        return settings
    if settings is None:
        return ChannelsSettings(service_name="channels")
    return ChannelsSettings.model_validate(settings.model_dump())
