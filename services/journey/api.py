"""HTTP routes of the journey service: journeys (list, get, publish, pause, resume, archive),
a customer's instances, and the per-step stats."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError

from services.journey import catalog, repository
from services.journey.compiled import CompiledJourney
from services.journey.dsl import Journey
from services.journey.engine import Engine
from services.journey.loader import check_doc
from services.journey.models import outbox
from services.journey.publishing import Refused, publish
from services.journey.registry import Registry
from services.journey.stats import funnel
from services.journey.work import Work
from shared.auth import require_scope
from shared.events import describe_errors
from shared.outbox import add_to_outbox
from shared.settings import Settings
from shared.yamldoc import DefinitionError, load_yaml


class _Body:
    """A request body where `load_yaml` expects a file, so errors say `body:LINE`."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._text

    def __str__(self) -> str:
        return "body"


def _registry(request: Request) -> Registry:
    return cast(Registry, request.app.state.runtime.state["registry"])


def _journey(request: Request, journey_id: str) -> CompiledJourney:
    found = _registry(request).current(journey_id)
    if found is None:
        raise HTTPException(404, f"journey_id: no journey {journey_id!r}")
    return found


def _summary(registry: Registry, cj: CompiledJourney, counts: dict[str, int]) -> dict[str, Any]:
    j = cj.journey
    versions = sorted(v for (jid, v) in registry.versions if jid == j.id)
    return {
        "id": j.id,
        "name": j.name,
        "version": j.version,
        "versions": versions,
        "enabled": j.enabled,
        "status": registry.status.get(j.id, "active"),
        "trigger": j.trigger.model_dump(mode="json"),
        "instances": counts,
    }


def build_router(settings: Settings) -> APIRouter:  # noqa: PLR0915  (the routes of one router)
    router = APIRouter(tags=["journeys"])
    read = Depends(require_scope(settings, "read"))
    write = Depends(require_scope(settings, "write"))

    @router.get("/v1/journeys", dependencies=[read])
    async def list_journeys(request: Request) -> dict[str, Any]:
        """Published journeys with instance counts by status, and the files refused at load."""
        runtime = request.app.state.runtime
        registry = _registry(request)
        async with runtime.engine.connect() as conn:
            counts = await repository.counts_by_journey(conn)
        return {
            "journeys": [
                _summary(registry, c, counts.get(c.journey.id, {}))
                for c in sorted(registry.all_current(), key=lambda c: c.journey.id)
            ],
            "refused": registry.refused,
        }

    @router.get("/v1/journeys/{journey_id}", dependencies=[read])
    async def get_journey(
        request: Request, journey_id: str, version: int | None = None
    ) -> dict[str, Any]:
        """A journey's definition (the current version, or `?version=`)."""
        cj = _journey(request, journey_id)
        if version is not None:
            found = _registry(request).get(journey_id, version)
            if found is None:
                raise HTTPException(
                    404, f"version: journey {journey_id!r} has no version {version}"
                )
            cj = found
        async with request.app.state.runtime.engine.connect() as conn:
            counts = (await repository.counts_by_journey(conn)).get(journey_id, {})
        return {
            **_summary(_registry(request), cj, counts),
            "definition": cj.journey.model_dump(mode="json"),
        }

    @router.post(
        "/v1/journeys",
        dependencies=[write],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
                "required": True,
            }
        },
    )
    async def publish_journey(request: Request) -> dict[str, Any]:
        """Publish a journey version (YAML or JSON body). Customers already in an older version
        stay on it; a changed body under an existing version is refused (409)."""
        raw = await request.body()
        kind = request.headers.get("content-type", "")
        try:
            if "json" in kind:
                journey = Journey.model_validate_json(raw)
                problems_doc = None
            else:
                doc = load_yaml(cast(Path, _Body(raw.decode("utf-8", "replace"))))
                journey = check_doc(doc)
                problems_doc = doc
        except ValidationError as exc:
            raise HTTPException(400, describe_errors(exc)) from exc
        except DefinitionError as exc:
            raise HTTPException(400, str(exc)) from exc
        if problems_doc is None:
            from services.journey.graph import problems  # noqa: PLC0415

            found = problems(journey)
            if found:
                loc, message = found[0]
                raise HTTPException(400, f"{'.'.join(map(str, loc))}: {message}")
        runtime = request.app.state.runtime
        try:
            async with runtime.engine.begin() as conn:
                outcome = await publish(conn, journey, "api")
        except Refused as exc:
            raise HTTPException(409, f"version: {exc}") from exc
        registry = _registry(request)
        registry.add(journey)
        return {"id": journey.id, "version": journey.version, "published": outcome == "new"}

    async def _set(request: Request, journey_id: str, status: str) -> dict[str, Any]:
        _journey(request, journey_id)
        registry = _registry(request)
        runtime = request.app.state.runtime
        async with runtime.engine.begin() as conn:
            await catalog.set_status(conn, journey_id, status)
            ended = 0
            if status == "archived":
                ended = await _end_all(conn, registry, runtime, journey_id)
        registry.set_status(journey_id, status)
        return {"id": journey_id, "status": status, "instances_ended": ended}

    @router.post("/v1/journeys/{journey_id}/pause", dependencies=[write])
    async def pause(request: Request, journey_id: str) -> dict[str, Any]:
        """No new entries, and running instances hold where they are until resumed."""
        return await _set(request, journey_id, "paused")

    @router.post("/v1/journeys/{journey_id}/resume", dependencies=[write])
    async def resume(request: Request, journey_id: str) -> dict[str, Any]:
        """Entries open again; waits that came due meanwhile fire at once (and say how late)."""
        return await _set(request, journey_id, "active")

    @router.post("/v1/journeys/{journey_id}/archive", dependencies=[write])
    async def archive(request: Request, journey_id: str) -> dict[str, Any]:
        """Retire a journey: no new entries, and every running instance ends now."""
        return await _set(request, journey_id, "archived")

    @router.get("/v1/journeys/{journey_id}/stats", dependencies=[read])
    async def stats(request: Request, journey_id: str) -> dict[str, Any]:
        """Per-step funnel: entered, waiting, exited, converted, branches; groups; graph."""
        cj = _journey(request, journey_id)
        async with request.app.state.runtime.engine.connect() as conn:
            rows = await repository.counters_of(conn, journey_id)
            statuses = await repository.status_counts(conn, journey_id)
            waiting = await repository.waiting_by_step(conn, journey_id)
        return funnel(cj.journey, rows, statuses, waiting)

    @router.get("/v1/profiles/{profile_id}/journeys", dependencies=[read])
    async def instances_of(request: Request, profile_id: str) -> dict[str, Any]:
        """A customer's journey instances, newest first, with current step and history."""
        async with request.app.state.runtime.engine.connect() as conn:
            found = await repository.instances_of_profile(conn, profile_id)
        return {"profile_id": profile_id, "instances": [_instance(i) for i in found]}

    return router


def _instance(inst: Any) -> dict[str, Any]:
    return {
        "instance_id": inst.instance_id,
        "journey_id": inst.journey_id,
        "version": inst.version,
        "status": inst.status,
        "group": inst.group,
        "current_step": inst.step,
        "waiting": inst.waiting,
        "entered_at": inst.entered_at,
        "converted_at": inst.converted_at,
        "ended_at": inst.ended_at,
        "reason": inst.reason,
        "history": inst.history,
    }


async def _end_all(conn: Any, registry: Registry, runtime: Any, journey_id: str) -> int:
    """End every running instance of an archived journey (their timers go with them)."""
    clock = runtime.state["clock"]
    engine: Engine = runtime.state["engine_"]
    now: datetime = clock.now()
    work = Work(registry, engine, now)
    running = await repository.active_instances_of_journey(conn, journey_id)
    work.hold(running)
    for inst in running:
        engine.end(inst, now, "journey archived", work.fx)
        work.touch(inst)
    await add_to_outbox(conn, outbox, await work.flush(conn))
    return len(running)
