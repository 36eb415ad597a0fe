"""JSON for record values and outbox rows: orjson, UTC datetimes written with `Z`."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def json_text(obj: object) -> str:
    """JSON text for a database column (json/jsonb parameters, the engine's JSON serializer):
    datetimes as orjson writes them, keys that are not strings allowed."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
