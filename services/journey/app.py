"""Wiring of the journey service: `uvicorn --factory services.journey.app:create_app`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.journey.api import build_router
from services.journey.consumer import profile_events_handler
from services.journey.engine import CompiledJourney
from services.journey.loader import load_journeys
from services.journey.models import outbox
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import PROFILE_EVENTS
from shared.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service_name="journey")

    async def setup(runtime: Runtime) -> None:
        journeys, errors = load_journeys(Path(settings.journeys_dir))
        compiled = [CompiledJourney.of(j) for j in journeys]
        runtime.state["journeys"] = compiled
        runtime.state["refused"] = [str(e) for e in errors]
        relay = runtime.add_relay(outbox)
        runtime.add_consumer(
            [PROFILE_EVENTS], "journey", profile_events_handler(runtime, relay, compiled)
        )

    app = create_service_app(settings, title="Journeyman journey service", setup=setup)
    app.include_router(build_router(settings))
    return app
