"""CSV export of any measurement answer: flat rows, columns in first-seen order, nested
values as JSON, so a spreadsheet opens every export the same way."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def wants_csv(format_: str | None, accept: str | None) -> bool:
    """`?format=csv` wins; otherwise an Accept header naming text/csv before JSON."""
    if format_ is not None:
        return format_.lower() == "csv"
    accept = (accept or "").lower()
    return "text/csv" in accept and (
        "application/json" not in accept
        or accept.index("text/csv") < accept.index("application/json")
    )
