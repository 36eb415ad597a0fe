"""Liquid templates: `templates/<name>/{subject,html,text}.liquid` for email. Missing data is an
error unless the template gives a `| default:`, so no customer gets "Hello ,"."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from liquid import CachingFileSystemLoader, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError


class _LimitedEnvironment(Environment):
    """Resource limits, so a template cannot loop or grow without bound."""

    loop_iteration_limit: ClassVar[int | None] = 10_000
    output_stream_limit: ClassVar[int | None] = 1_000_000
    context_depth_limit: ClassVar[int] = 20


class TemplateError(ValueError):
    """A template that is missing or fails to render for this customer."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class Templates:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._env = _LimitedEnvironment(
            loader=CachingFileSystemLoader(directory), undefined=StrictDefaultUndefined
        )

    def render_email(self, name: str, variables: dict[str, Any]) -> RenderedEmail:
        parts = {}
        for part in ("subject", "html", "text"):
            try:
                template = self._env.get_template(f"{name}/{part}.liquid")
                parts[part] = template.render(**variables)
            except LiquidError as exc:
                raise TemplateError(f"template {name}/{part}.liquid: {exc}") from exc
        return RenderedEmail(parts["subject"].strip(), parts["html"], parts["text"])


def template_variables(profile: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What a template sees: `customer` (traits), `profile`, `event`, `journey`."""
    return {
        "customer": profile.get("traits") or {},
        "profile": profile,
        "event": data.get("event") or {},
        "journey": data.get("journey") or {},
    }
