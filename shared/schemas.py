"""Generated documents kept in the repository: the JSON Schemas of the definition files (for
editors, via the yaml-language-server modeline) and the AsyncAPI document of the topics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel

from shared.asyncapi import document


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """A draft-07 schema (what yaml-language-server checks), definitions under `definitions`."""
    schema = model.model_json_schema(ref_template="#/definitions/{model}")
    definitions = schema.pop("$defs", {})
    out = {"$schema": "http://json-schema.org/draft-07/schema#", "title": title, **schema}
    if definitions:
        out["definitions"] = definitions
    return out


def render_all(models: dict[str, tuple[type[BaseModel], str]]) -> dict[str, bytes]:
    """File name -> content, for every generated document."""
    files = {
        f"{name}.schema.json": orjson.dumps(json_schema(model, title), option=orjson.OPT_INDENT_2)
        + b"\n"
        for name, (model, title) in models.items()
    }
    files["asyncapi.yaml"] = yaml.safe_dump(
        document(), sort_keys=False, allow_unicode=True
    ).encode()
    return files


def write_all(directory: Path, models: dict[str, tuple[type[BaseModel], str]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_all(models).items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written
