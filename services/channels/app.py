"""Wiring of the channels service: `uvicorn --factory services.channels.app:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from services.channels.api import build_router
from services.channels.consumer import dispatch_handler, profiles_handler
from services.channels.delivery import Delivery, Tracking
from services.channels.feedback_api import build_feedback_router
from services.channels.links import LinkMaker
from services.channels.models import outbox
from services.channels.pipeline import Clock, Pipeline
from services.channels.providers.base import Provider
from services.channels.providers.email import SmtpProvider
from services.channels.providers.push import FcmPush
from services.channels.providers.sender import RateLimitedProvider
from services.channels.providers.sms import TwilioSms
from services.channels.providers.webhook import WebhookProvider
from services.channels.settings import ChannelsSettings, channels_settings
from services.channels.templates import Templates
from shared.runtime import Runtime
from shared.settings import Settings
from shared.topics import DISPATCH, PROFILES
from shared.web import create_service_app

log = logging.getLogger(__name__)
DISPATCH_GROUP = "channels-dispatch"  # the consumer group the dispatch requests are shared in


def _utc_now() -> datetime:
    return datetime.now(UTC)


def providers_for(settings: ChannelsSettings) -> dict[str, RateLimitedProvider]:
    rates = {
        "email": settings.email_rate_per_s, "sms": settings.sms_rate_per_s,
        "push": settings.push_rate_per_s, "webhook": settings.webhook_rate_per_s,
    }  # fmt: skip
    built: list[Provider] = [
        SmtpProvider(settings),
        TwilioSms(settings),
        FcmPush(settings),
        WebhookProvider(settings),
    ]
    return {
        p.channel: RateLimitedProvider(
            p, rates[p.channel], settings.provider_tries, settings.provider_backoff_s
        )
        for p in built
    }


def link_maker(settings: ChannelsSettings) -> LinkMaker:
    return LinkMaker(
        settings.link_secret.get_secret_value(), settings.channels_public_url, settings.public_url
    )


async def _every(seconds: float, what: str, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await work()
        except Exception as exc:
            log.warning("%s failed", what, extra={"error": repr(exc)})
        await asyncio.sleep(seconds)


def create_app(settings: Settings | None = None, clock: Clock = _utc_now) -> FastAPI:
    cfg = channels_settings(settings or Settings(service_name="channels"))
    templates = Templates(Path(cfg.templates_dir))
    for name, problems in templates.problems.items():
        log.error("template refused", extra={"template": name, "problems": problems})

    async def setup(runtime: Runtime) -> None:
        relay = runtime.add_relay(outbox)
        providers = providers_for(cfg)
        for p in providers.values():
            await p.provider.start()
        delivery = Delivery(
            templates, providers, link_maker(cfg), Tracking(cfg.track_opens, cfg.track_clicks),
            cfg.send_concurrency,
        )  # fmt: skip
        pipeline = Pipeline(runtime.engine, relay, delivery, cfg.policy(), clock)
        runtime.state.update(
            channels_relay=relay, pipeline=pipeline, templates=templates, providers=providers
        )
        runtime.add_consumer([PROFILES], "channels-profiles", profiles_handler(runtime))
        runtime.add_consumer([DISPATCH], DISPATCH_GROUP, dispatch_handler(pipeline))
        unknown_after = timedelta(seconds=cfg.unknown_after_s)
        tasks = [
            asyncio.create_task(_every(cfg.deferred_poll_s, "deferred sends", pipeline.run_due)),
            asyncio.create_task(
                _every(
                    min(60.0, max(cfg.unknown_after_s / 4, 0.5)), "cut-off sweep",
                    lambda: pipeline.sweep(unknown_after, cfg.retry_unknown_types),
                )
            ),
        ]  # fmt: skip

        async def stop() -> None:
            await pipeline.close()  # the batch in delivery is recorded before providers close
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for p in providers.values():
                await p.provider.close()

        runtime.on_stop(stop)

    app = create_service_app(cfg, title="Journeyman channels service", setup=setup)
    app.include_router(build_router(cfg))
    app.include_router(build_feedback_router(cfg))
    return app
