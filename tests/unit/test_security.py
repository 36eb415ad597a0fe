"""Security properties checked across every service: no endpoint answers without a key except
health, ingestion (write key), signed customer links and tracking; keys are compared in
constant time; secrets never show in settings' repr; templates cannot reach files; CEL cannot
reach Python objects, files or functions."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import cel
import httpx
import pytest
from fastapi import FastAPI
from liquid import Environment, FileSystemLoader
from liquid.exceptions import LiquidError

import shared.auth
from services.channels.app import create_app as channels_app
from services.journey.app import create_app as journey_app
from services.profile.app import create_app as profile_app
from services.segmenter.app import create_app as segmenter_app
from shared.cel import Condition
from shared.settings import Settings

# Reachable without an ops key: probes, the ingestion API (its own write key), and pages a
# customer opens from a message (each verifies a signed, expiring token itself).
PUBLIC = re.compile(
    r"^/(healthz|readyz|metrics|docs|redoc|openapi\.json|docs/oauth2-redirect)$"
    r"|^/v1/(track|identify|page|screen|alias|group|batch)$"
    r"|^/v1/(unsubscribe|preferences|survey|surveys)/\{[a-z_]+\}"
    r"|^/t/"
    r"|^/console(/login)?$|^/console/static/"
)
SETTINGS = Settings(
    api_keys=[{"key": "ops", "scope": "write"}], write_keys=["wk"], service_name="security-test"
)


def _apps() -> list[tuple[str, FastAPI]]:
    return [
        ("profile", profile_app(SETTINGS.model_copy(update={"service_name": "profile"}))),
        ("segmenter", segmenter_app(SETTINGS.model_copy(update={"service_name": "segmenter"}))),
        ("journey", journey_app(SETTINGS.model_copy(update={"service_name": "journey"}))),
        ("channels", channels_app(SETTINGS.model_copy(update={"service_name": "channels"}))),
    ]


def _protected_routes() -> list[tuple[str, str, str]]:
    """Every documented route of every service that is not public."""
    found: list[tuple[str, str, str]] = []
    for name, app in _apps():
        for route, operations in app.openapi()["paths"].items():
            if not PUBLIC.search(route):
                path = re.sub(r"\{[^}]+\}", "x", route)
                found.extend((name, method.upper(), path) for method in sorted(operations))
    return found


@pytest.mark.parametrize(("service", "method", "path"), _protected_routes())
async def test_ops_endpoint_refuses_a_request_without_a_key(
    service: str, method: str, path: str
) -> None:
    app = dict(_apps())[service]
    # No lifespan: nothing behind the route runs, so only the key check can answer.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(method, path, json={})
    assert response.status_code == 401, (service, method, path, response.text)
    assert "API key" in response.json()["detail"]


def test_keys_are_compared_in_constant_time() -> None:
    source = inspect.getsource(shared.auth)
    assert "hmac.compare_digest" in source
    assert " == key" not in source
    assert "key ==" not in source


def test_secrets_do_not_show_in_settings_repr() -> None:
    shown = repr(SETTINGS) + str(SETTINGS.model_dump())
    assert "'ops'" not in shown
    assert "'wk'" not in shown


def test_templates_cannot_read_files_outside_their_folder(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    env = Environment(loader=FileSystemLoader(tmp_path / "t"))
    template = env.from_string("{% include '../secret.txt' %}")
    with pytest.raises(LiquidError):
        template.render()


@pytest.mark.parametrize(
    "source",
    ['__import__("os").system("id")', 'open("/etc/passwd")', "profile.__class__",
     "profile.__dict__", 'exec("1")', "profile.traits.__getattribute__"],
)  # fmt: skip
def test_cel_reaches_no_python_objects_files_or_functions(source: str) -> None:
    """CEL has no I/O and no Python attributes: such an expression errors when evaluated (and a
    condition that errors is false), it never returns something of Python's."""
    program = cel.compile(source)
    with pytest.raises((RuntimeError, ValueError, TypeError, KeyError)):
        program.execute({"profile": {"traits": {"first_name": "Ana"}}})
    assert Condition(source).holds({"profile": {"traits": {"first_name": "Ana"}}}) is False
