"""Wiring of the channels service: `uvicorn --factory services.channels.app:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from services.channels import repository
from services.channels.api import build_router
from services.channels.consumer import dispatch_handler, profiles_handler
from services.channels.models import outbox
from services.channels.providers.email import SmtpProvider
from services.channels.templates import Templates
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import DISPATCH, PROFILES
from shared.web import create_service_app

log = logging.getLogger(__name__)
CUT_OFF_AFTER = timedelta(minutes=2)


async def _sweep_cut_off_sends(runtime: Runtime) -> None:
    """Mark sends a dead process left mid-flight as `unknown`, now and every minute."""
    while True:
        try:
            async with runtime.engine.begin() as conn:
                count = await repository.mark_cut_off(conn, datetime.now(UTC) - CUT_OFF_AFTER)
            if count:
                log.warning("sends cut off by a crash marked unknown", extra={"count": count})
        except Exception as exc:
            log.warning("sweep failed", extra={"error": repr(exc)})
        await asyncio.sleep(60)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service_name="channels")

    async def setup(runtime: Runtime) -> None:
        templates = Templates(Path(settings.templates_dir))
        relay = runtime.add_relay(outbox)
        runtime.add_consumer([PROFILES], "channels-profiles", profiles_handler(runtime))
        runtime.add_consumer(
            [DISPATCH],
            "channels-dispatch",
            dispatch_handler(runtime, relay, templates, SmtpProvider(settings)),
        )
        sweeper = asyncio.create_task(_sweep_cut_off_sends(runtime))

        async def stop_sweeper() -> None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

        runtime.on_stop(stop_sweeper)

    app = create_service_app(settings, title="Journeyman channels service", setup=setup)
    app.include_router(build_router(settings))
    return app
