"""Wiring of the profile service: `uvicorn --factory services.profile.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.profile.api import build_router
from services.profile.consumer import events_handler
from services.profile.models import outbox
from services.profile.ops_api import build_ops_router
from services.profile.pages import build_pages_router
from services.profile.settings import profile_settings
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import EVENTS
from shared.web import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service; plain `Settings` are accepted and given the profile defaults."""
    config = profile_settings(settings)

    async def setup(runtime: Runtime) -> None:
        relay = runtime.add_relay(outbox)
        runtime.state["profile_relay"] = relay
        runtime.add_consumer([EVENTS], "profile", events_handler(runtime, relay))

    app = create_service_app(config, title="Journeyman profile service", setup=setup)
    app.include_router(build_router(config))
    app.include_router(build_ops_router(config))
    app.include_router(build_pages_router(config))
    return app
