"""CEL conditions: compiled once, evaluated in microseconds. A condition that errors at run time
(a missing field, a type mismatch) counts as false, and the reason is returned for the logs."""

from __future__ import annotations

from typing import Any

import cel


def check_expression(source: str | None) -> str | None:
    """Pydantic validator: refuse CEL that does not compile, with the parser's message."""
    if source is not None:
        try:
            cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"invalid CEL expression: {exc}") from exc
    return source


class Condition:
    def __init__(self, source: str) -> None:
        self.source = source
        self._program = cel.compile(source)

    def holds(self, variables: dict[str, Any]) -> bool:
        try:
            return self._program.execute(variables) is True
        except (ValueError, TypeError, RuntimeError, KeyError):
            return False
