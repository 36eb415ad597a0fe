"""Wiring of the journey service: `uvicorn --factory services.journey.app:create_app`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from services.journey.api import build_router
from services.journey.consumer import events_handler
from services.journey.engine import Engine
from services.journey.models import outbox
from services.journey.publishing import load_registry, plan_schedules, publish_files
from services.journey.registry import Registry
from services.journey.settings import JourneySettings
from services.journey.webhooks import WebhookCaller
from services.journey.worker import Loop, Refresher, TimerWorker
from shared.clock import Clock, SystemClock
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS, SEGMENT_CHANGES
from shared.web import create_service_app


def journey_settings(settings: Settings | None) -> JourneySettings:
    if settings is None:
        return JourneySettings(service_name="journey")
    if isinstance(settings, JourneySettings):
        return settings
    return JourneySettings.model_validate(settings.model_dump())


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """`clock` is the time the engine decides by (tests pass a ManualClock)."""
    config = journey_settings(settings)
    time_source = clock or SystemClock()
    engine = Engine(config.journey_time_scale)

    async def setup(runtime: Runtime) -> None:
        directories = [Path(config.journeys_dir), *(Path(d) for d in config.journey_extra_dirs)]
        async with runtime.engine.begin() as conn:
            refused = await publish_files(conn, directories)
            loaded = await load_registry(conn, refused)
            await plan_schedules(conn, loaded, time_source.now())
        registry: Registry = loaded
        relay = runtime.add_relay(outbox)
        timers = TimerWorker(
            runtime.engine, registry, engine, relay, time_source, config.journey_timer_batch
        )
        loops = [
            *(
                Loop(f"journey-timers-{n}", timers.step, config.journey_timer_interval_s)
                for n in range(1, config.journey_timer_workers + 1)
            ),
            Loop(
                "journey-webhooks",
                WebhookCaller(
                    runtime.engine,
                    time_source,
                    config.journey_webhook_allow,
                    config.journey_webhook_timeout_s,
                ).step,
                0.5,
            ),
            Loop(
                "journey-refresh",
                Refresher(
                    runtime.engine,
                    registry,
                    time_source,
                    timedelta(days=config.journey_seen_retention_days),
                ).step,
                config.journey_refresh_interval_s,
            ),
        ]
        runtime.state.update(
            registry=registry,
            clock=time_source,
            engine_=engine,
            timers=timers,
            loops=loops,
            refused=registry.refused,
        )
        runtime.add_consumer(
            [PROFILE_EVENTS, SEGMENT_CHANGES],
            "journey",
            events_handler(runtime, relay, registry, engine, time_source),
            config.journey_lanes,
        )
        for loop in loops:
            await loop.start()
            runtime.on_stop(loop.stop)

    app = create_service_app(config, title="Journeyman journey service", setup=setup)
    app.include_router(build_router(config))
    return app
