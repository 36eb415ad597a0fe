"""YAML files that remember where each value came from, so a validation error can point at
`journeys/welcome.yaml:12` instead of at a Python traceback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class DefinitionError(ValueError):
    """A definition file that cannot be used, with the file, line and a readable message."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class YamlDoc:
    path: Path
    data: Any
    lines: dict[Loc, int]

    def in_file(self, loc: Sequence[str | int]) -> Loc:
        """`loc` without the parts pydantic adds that are not in the file (union tags)."""
        kept: Loc = ()
        for part in loc:
            if (*kept, part) in self.lines:
                kept = (*kept, part)
        return kept

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest node on `loc` that exists in the file."""
        return self.lines.get(self.in_file(loc))


def _walk(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            out[key] = _walk(loader, value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> YamlDoc:
    """Parse a YAML file, raising DefinitionError with the line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(path, None, f"cannot read: {exc}") from exc
    lines: dict[Loc, int] = {}
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        data = _walk(loader, node, (), lines) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise DefinitionError(path, line, f"invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(path, None, f"invalid YAML: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(path, data, lines)


def validate_doc(doc: YamlDoc, model: type[M]) -> M:
    """Validate a document against a model; the first error is reported with its line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = doc.in_file([p for p in first["loc"] if isinstance(p, str | int)])
        field = ".".join(str(p) for p in loc) or "document"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DefinitionError(doc.path, doc.line_of(loc), f"{field}: {first['msg']}{more}") from exc
