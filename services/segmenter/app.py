"""Wiring of the segmenter: `uvicorn --factory services.segmenter.app:create_app`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.segmenter.api import build_router
from services.segmenter.consumer import profile_events_handler
from services.segmenter.models import outbox
from services.segmenter.registry import Registry
from services.segmenter.rfm import load_rfm
from services.segmenter.settings import SegmenterSettings
from services.segmenter.worker import ClockLoop
from shared.clock import Clock, SystemClock
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS
from shared.web import create_service_app


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """`clock` is the time the segmenter decides by (tests pass a ManualClock)."""
    if settings is None:
        settings = SegmenterSettings(service_name="segmenter")
    elif not isinstance(settings, SegmenterSettings):
        settings = SegmenterSettings.model_validate(settings.model_dump())
    assert isinstance(settings, SegmenterSettings)
    config: SegmenterSettings = settings
    time_source = clock or SystemClock()

    async def setup(runtime: Runtime) -> None:
        registry = Registry(Path(config.segments_dir))
        registry.load_files()
        rfm, rfm_error = load_rfm(Path(config.segmenter_rfm_file))
        relay = runtime.add_relay(outbox)
        loop = ClockLoop(runtime.engine, registry, relay, time_source, settings=config, rfm=rfm)
        runtime.state.update(
            registry=registry, clock=time_source, clock_loop=loop,
            refused=[*registry.refused, *([rfm_error] if rfm_error else [])],
        )  # fmt: skip
        runtime.add_consumer(
            [PROFILE_EVENTS], "segmenter",
            profile_events_handler(runtime, relay, registry, time_source), config.segmenter_lanes,
        )  # fmt: skip
        await loop.start()
        runtime.on_stop(loop.stop)

    app = create_service_app(config, title="Journeyman segmenter", setup=setup)
    app.include_router(build_router(config))
    return app
