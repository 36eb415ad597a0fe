"""Figures the reliability tests collect (faults survived, inputs tried, events lost, duplicate
sends, unknown attempts), written at the end of the session for `make reliability`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

FIGURES: Counter[str] = Counter()
REPORT = Path(__file__).resolve().parent / "artifacts" / "reliability.json"


def record(**figures: int) -> None:
    FIGURES.update(figures)


def write() -> None:
    if FIGURES:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_bytes(orjson.dumps(dict(FIGURES), option=orjson.OPT_INDENT_2))
