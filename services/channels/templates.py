"""Message templates: Liquid files, one per part, in `templates/<name>/`.

Parts by channel: email `subject.liquid`, `html.liquid` (or `html.mjml`, compiled to
responsive HTML once at load with MRML, the Rust port of MJML), `text.liquid`; SMS
`sms.liquid`; push `push_title.liquid`, `push_body.liquid`; webhook `webhook.liquid` (a JSON
body). A locale variant (`subject.fr.liquid`) is chosen by the customer's `traits.language`
(`fr-BE` tries `fr-BE`, then `fr`), falling back to the plain file.

Missing data is an error unless the template gives a `| default:`, so no customer gets
"Hello ,". Every template is parsed when loaded: syntax errors and unknown top-level variables
are reported with the file and line, before any customer is concerned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import mrml
from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError

VARIABLES = frozenset({"profile", "customer", "event", "journey", "links", "message", "overrides"})
"""What a template may use: `profile` (the snapshot), `customer` (its traits, a shorthand kept
for older templates), `event` (the triggering event), `journey` ({id, name, step_id}),
`links` (unsubscribe, preferences, survey), `message` ({dispatch_id, channel, type}),
`overrides` (the journey step's, e.g. a discount)."""

PARTS = {
    "email": ("subject", "html", "text"),
    "sms": ("sms",),
    "push": ("push_title", "push_body"),
    "webhook": ("webhook",),
}
_FILE = re.compile(r"^(?P<part>[a-z_]+)(?:\.(?P<locale>[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?))?"
                   r"\.(?P<kind>liquid|mjml)$")  # fmt: skip


class _LimitedEnvironment(Environment):
    """Resource limits, so a template cannot loop or grow without bound."""

    loop_iteration_limit: ClassVar[int | None] = 10_000
    output_stream_limit: ClassVar[int | None] = 1_000_000
    context_depth_limit: ClassVar[int] = 20


class TemplateError(ValueError):
    """A template that is missing, invalid, or fails to render for this customer."""


@dataclass(frozen=True)
class Rendered:
    """The rendered parts of one message, by part name."""

    channel: str
    parts: dict[str, str]

    def __getitem__(self, part: str) -> str:
        return self.parts[part]


@dataclass
class Template:
    name: str
    directory: Path
    parts: dict[str, dict[str, BoundTemplate]] = field(default_factory=dict)
    """part -> locale ('' for the plain file) -> parsed template"""

    @property
    def channels(self) -> list[str]:
        return [ch for ch, parts in PARTS.items() if all(p in self.parts for p in parts)]

    def part(self, part: str, language: str | None) -> BoundTemplate:
        variants = self.parts.get(part)
        if not variants:
            raise TemplateError(f"template {self.name}: no {part} part")
        if language:
            for locale in (language, language.split("-")[0]):
                if locale in variants:
                    return variants[locale]
        if "" not in variants:
            raise TemplateError(f"template {self.name}: no plain {part} part to fall back on")
        return variants[""]


class Templates:
    """Every template of a directory, parsed and checked at load."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._env = _LimitedEnvironment(undefined=StrictDefaultUndefined)
        self.templates: dict[str, Template] = {}
        self.problems: dict[str, list[str]] = {}
        self.reload()

    def reload(self) -> None:
        """Parse everything again; a template with a problem is kept out (and reported)."""
        templates: dict[str, Template] = {}
        problems: dict[str, list[str]] = {}
        if self._directory.is_dir():
            for folder in sorted(p for p in self._directory.iterdir() if p.is_dir()):
                template, errors = self._load(folder)
                if errors:
                    problems[folder.name] = errors
                else:
                    templates[folder.name] = template
        self.templates, self.problems = templates, problems

    def _load(self, folder: Path) -> tuple[Template, list[str]]:
        template = Template(folder.name, folder)
        errors: list[str] = []
        for path in sorted(folder.iterdir()):
            match = _FILE.match(path.name)
            if match is None:
                continue
            try:
                parsed = self.parse(path.read_text(encoding="utf-8"), match["kind"], path)
            except TemplateError as exc:
                errors.append(str(exc))
                continue
            template.parts.setdefault(match["part"], {})[match["locale"] or ""] = parsed
        if not template.parts and not errors:
            errors.append(f"{folder}: no template parts (*.liquid)")
        return template, errors

    def parse(self, source: str, kind: str = "liquid", path: Path | None = None) -> BoundTemplate:
        """Parse (and for MJML compile) one part; TemplateError names the file and line."""
        where = str(path) if path else "template"
        if kind == "mjml":
            try:
                source = mrml.to_html(source).content
            except OSError as exc:
                raise TemplateError(f"{where}: MJML: {exc}") from exc
        try:
            parsed = self._env.from_string(source, name=where)
        except LiquidError as exc:
            raise TemplateError(f"{where}:{_line(exc, source)}: {_message(exc)}") from exc
        unknown = sorted(set(parsed.global_variables()) - VARIABLES)
        if unknown:
            line = _line_of(source, unknown[0])
            raise TemplateError(
                f"{where}:{line}: unknown variable {unknown[0]!r}; templates may use "
                f"{', '.join(sorted(VARIABLES))}"
            )
        return parsed

    def get(self, name: str) -> Template:
        template = self.templates.get(name)
        if template is None:
            problems = self.problems.get(name)
            if problems:
                raise TemplateError(f"template {name} is invalid: {'; '.join(problems)}")
            raise TemplateError(f"template {name} is missing from {self._directory}")
        return template

    def render(self, name: str, channel: str, variables: Mapping[str, Any]) -> Rendered:
        template = self.get(name)
        if channel not in PARTS:
            raise TemplateError(f"no template parts for channel {channel}")
        language = ((variables.get("profile") or {}).get("traits") or {}).get("language")
        language = language if isinstance(language, str) else None
        parts = {}
        for part in PARTS[channel]:
            try:
                parts[part] = template.part(part, language).render(**variables)
            except LiquidError as exc:
                raise TemplateError(f"template {name}/{part}: {_message(exc)}") from exc
        if "subject" in parts:
            parts["subject"] = " ".join(parts["subject"].split())
        for part in ("sms", "push_title", "push_body"):
            if part in parts:
                parts[part] = parts[part].strip()
        return Rendered(channel, parts)

    def render_email(self, name: str, variables: Mapping[str, Any]) -> Rendered:
        return self.render(name, "email", variables)


def template_variables(
    profile: Mapping[str, Any], data: Mapping[str, Any], links: Mapping[str, str] | None = None,
    message: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What a template sees (see VARIABLES)."""
    return {
        "customer": profile.get("traits") or {},
        "profile": profile,
        "event": data.get("event") or {},
        "journey": data.get("journey") or {},
        "links": links if links is not None else {},  # as given: `Links` signs on first read
        "message": dict(message or {}),
        "overrides": data.get("overrides") or {},  # the journey step's (e.g. a discount)
    }


def _message(exc: LiquidError) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0]


def _line(exc: LiquidError, source: str) -> int:
    """Line of the token at fault; an error at the end of input is on the last line."""
    token = getattr(exc, "token", None)
    index = getattr(token, "start_index", -1)
    if getattr(token, "source", "") and index >= 0:
        return str(token.source).count("\n", 0, index) + 1  # type: ignore[union-attr]
    return source.rstrip("\n").count("\n") + 1


def _line_of(source: str, word: str) -> int:
    found = re.search(rf"\b{re.escape(word)}\b", source)
    return source.count("\n", 0, found.start()) + 1 if found else 1
