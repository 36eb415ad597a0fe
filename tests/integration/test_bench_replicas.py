"""The journey benchmark's extra replica is a real `journeyman serve journey` process with the
benchmark's settings: on the benchmark's database, with its journey files, firing its timers.
If the settings did not reach it, the drain it is counted in would run on one replica."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from journeyman.bench.common import asyncpg_dsn
from journeyman.bench.journey import ROOT, TIMER_JOURNEY, _completed, drained, seed_waiting
from journeyman.bench.replicas import service_replicas
from services.journey.settings import JourneySettings


async def test_the_extra_replica_fires_the_benchmarks_timers_and_stops_after(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "bench-timers.yaml").write_text(TIMER_JOURNEY)
    settings = JourneySettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        service_name="bench-journey-test",
        journeys_dir=str(ROOT / "journeys"),
        journey_extra_dirs=[str(journeys)],
        kafka_session_timeout_ms=2_000,
        log_level="WARNING",
    )
    dsn = asyncpg_dsn(database_url)
    async with service_replicas("journey", 1, settings, tmp_path) as replicas:
        # Nothing else runs an engine here: only the replica can fire these.
        past = datetime.now(UTC) - timedelta(minutes=1)
        await seed_waiting(dsn, "rep", 50, past, 0)
        await drained(dsn, "rep", 60, time.perf_counter())
        assert await _completed(dsn, "rep") == 50
        assert replicas.cpu_s() > 0
        (pid,) = replicas.pids
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
