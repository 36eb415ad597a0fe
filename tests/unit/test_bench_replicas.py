"""A benchmark's extra replicas are `journeyman serve` processes configured through the
environment: the settings it gave its in-process replica must come back whole from the
variables it passes them, or the replicas would run a different service (another consumer
group, other journeys)."""

from __future__ import annotations

import pytest

from journeyman.bench.channels import CAPS
from journeyman.bench.replicas import settings_env
from services.channels.settings import ChannelsSettings
from services.journey.settings import JourneySettings


def test_the_settings_given_come_back_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = JourneySettings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5999/bench",
        kafka_bootstrap_servers="127.0.0.1:9999",
        service_name="bench-journey",
        journeys_dir="shop/journeys",
        journey_extra_dirs=["shop/a", "shop/b c"],
        kafka_session_timeout_ms=6_000,
        journey_time_scale=0.5,
    )
    env = settings_env(given)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = JourneySettings()
    assert again.model_dump() == given.model_dump()
    assert "JOURNEYMAN_JOURNEY_LANES" not in env  # defaults are left to the replica's own


def test_the_channels_settings_come_back_whole_caps_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channels benchmark's replica must apply the same caps: a replica without them
    would send what the in-process one caps."""
    given = ChannelsSettings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5999/bench",
        kafka_bootstrap_servers="127.0.0.1:9999",
        service_name="bench-channels",
        templates_dir="shop/templates",
        smtp_host="127.0.0.1",
        smtp_port=2525,
        twilio_base_url="http://127.0.0.1:8999",
        fcm_base_url="http://127.0.0.1:8999",
        caps=CAPS,
        unknown_after_s=600,
        kafka_session_timeout_ms=3_000,
    )
    for name, value in settings_env(given).items():
        monkeypatch.setenv(name, value)
    again = ChannelsSettings()
    assert again.model_dump() == given.model_dump()
    assert len(again.caps) == len(CAPS)
