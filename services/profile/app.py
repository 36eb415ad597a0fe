"""Wiring of the profile service: `uvicorn --factory services.profile.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.profile.analytics_api import build_analytics_router
from services.profile.api import build_router
from services.profile.console.routes import build_console_router, static_files
from services.profile.consumer import events_handler
from services.profile.models import outbox
from services.profile.ops_api import build_ops_router
from services.profile.pages import build_pages_router
from services.profile.service_clients import DeadLetterCounter, ServiceClients
from services.profile.settings import profile_settings
from services.profile.survey_api import build_survey_router
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
        # Measurement and the console read the other services over HTTP, and the dead letters.
        clients = runtime.state["service_clients"] = ServiceClients(config)
        dead = runtime.state["dead_letters"] = DeadLetterCounter(config)
        runtime.on_stop(clients.close)
        runtime.on_stop(dead.close)

    app = create_service_app(config, title="Journeyman profile service", setup=setup)
    app.include_router(build_router(config))
    app.include_router(build_ops_router(config))
    app.include_router(build_pages_router(config))
    app.include_router(build_survey_router(config))
    app.include_router(build_analytics_router(config))
    app.include_router(build_console_router(config))
    app.mount("/console/static", static_files(), name="console-static")
    return app
