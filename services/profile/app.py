"""Wiring of the profile service: `uvicorn --factory services.profile.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.profile.api import build_router
from services.profile.consumer import events_handler
from services.profile.models import outbox
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import EVENTS
from shared.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service_name="profile")

    async def setup(runtime: Runtime) -> None:
        relay = runtime.add_relay(outbox)
        runtime.add_consumer([EVENTS], "profile", events_handler(runtime, relay))

    app = create_service_app(settings, title="Journeyman profile service", setup=setup)
    app.include_router(build_router(settings))
    return app
