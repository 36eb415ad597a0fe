"""Wiring of the segmenter: `uvicorn --factory services.segmenter.app:create_app`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.segmenter.api import build_router
from services.segmenter.consumer import profile_events_handler
from services.segmenter.definitions import load_segments
from services.segmenter.models import outbox
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS
from shared.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service_name="segmenter")

    async def setup(runtime: Runtime) -> None:
        segments, errors = load_segments(Path(settings.segments_dir))
        runtime.state["segments"] = segments
        runtime.state["refused"] = [str(e) for e in errors]
        relay = runtime.add_relay(outbox)
        runtime.add_consumer(
            [PROFILE_EVENTS], "segmenter", profile_events_handler(runtime, relay, segments)
        )

    app = create_service_app(settings, title="Journeyman segmenter", setup=setup)
    app.include_router(build_router(settings))
    return app
