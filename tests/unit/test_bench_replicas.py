"""A benchmark's extra replicas are `journeyman serve` processes configured through the
environment: the settings it gave its in-process replica must come back whole from the
variables it passes them, or the replicas would run a different service (another consumer
group, other journeys)."""

from __future__ import annotations

import pytest

from journeyman.bench.replicas import settings_env
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
