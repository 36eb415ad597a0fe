"""Checking a CEL condition against the variables it will be given, before it runs.

The CEL library here compiles and interprets; it has no type checker. The checks a marketer's
CI needs are done beside it, against a declared shape of each variable:

- every variable the expression reads is declared (`evnt.properties` is a typo, not `false`);
- a field path into a closed map names a field it has (`profile.behaviour.order_count` is a
  typo of `orders_count`); open maps (traits, event properties) take any key;
- evaluated once on a typed sample of the declared shape, no operation mixes types CEL refuses
  (`profile.behaviour.orders_count > "3"`) and no function is unknown.

The sample run sees only the branches the sample reaches, so the last check finds most type
errors, not all; the first two are exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from shared.cel import check_expression


@dataclass(frozen=True)
class Closed:
    """A map with known fields; `patterns` name families of fields (`last_<channel>_opened_at`)."""

    fields: Mapping[str, Any]
    patterns: tuple[tuple[str, Any], ...] = ()

    def declares(self, name: str) -> bool:
        return self.child(name) is not _MISSING

    def child(self, name: str) -> Any:
        if name in self.fields:
            return self.fields[name]
        for pattern, node in self.patterns:
            if re.fullmatch(pattern, name):
                return node
        return _MISSING


@dataclass(frozen=True)
class Open:
    """A map whose keys are whatever the sender chose (traits, event properties)."""

    sample: Mapping[str, Any] = field(default_factory=dict)


_MISSING = object()
_TIME = "2026-01-01T00:00:00Z"

#: `shared.contracts.ProfileSnapshot`, its behaviour as docs/profile.md lists it.
PROFILE = Closed(
    {
        "profile_id": "p", "version": 1, "user_id": "u", "anonymous_id": "a",
        "traits": Open(), "consent": Open(), "updated_at": _TIME,
        "behaviour": Closed(
            {
                "event_count": 1, "first_seen_at": _TIME, "last_seen_at": _TIME,
                "page_views": 1, "visits": 1,
                "product_views": 1, "last_product_viewed": "sku", "last_product_viewed_at": _TIME,
                "open_cart": Closed({"items": [], "value": 1.0, "items_count": 1,
                                     "last_activity_at": _TIME}),
                "last_cart_activity_at": _TIME,
                "orders_count": 1, "total_revenue": 1.0, "average_basket": 1.0,
                "first_order_at": _TIME, "last_order_at": _TIME,
                "refunds_count": 1, "total_refunded": 1.0, "net_revenue": 1.0,
                "last_message_opened": Open(), "last_message_clicked": Open(),
                "last_survey_scores": Open(),
            },
            patterns=(
                (r"last_[a-z0-9_]+_(opened|clicked)_at", _TIME),
                (r"last_[a-z0-9_-]+_score", 1.0),
            ),
        ),
    }
)  # fmt: skip

#: A Segment message as journeys see it (`shared.events`, on the wire: camelCase), with the
#: spec's common fields.
EVENT = Closed(
    {
        "type": "track", "event": "Order Completed", "messageId": "m", "userId": "u",
        "anonymousId": "a", "previousId": "a", "groupId": "g", "timestamp": _TIME,
        "sentAt": _TIME, "receivedAt": _TIME, "name": "n", "category": "c",
        "properties": Open(), "traits": Open(), "context": Open(), "integrations": Open(),
        "channel": "server", "originalTimestamp": _TIME, "version": 1,  # Segment's common fields
        "segment": "s", "change": "entered",  # a segment trigger's event
    }
)  # fmt: skip

#: What a journey's conditions are given (`services.journey.engine`).
JOURNEY_VARIABLES = {
    "profile": PROFILE,
    "event": EVENT,
    "journey": Closed({"id": "j", "name": "n", "step_id": "s", "trigger": EVENT, "group": "g"}),
}
#: What a segment's CEL is given (`services.segmenter.evaluation`).
SEGMENT_VARIABLES = {"profile": PROFILE}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_SEGMENT = re.compile(r"\s*\.\s*([A-Za-z_]\w*)")


def problems(source: str, variables: Mapping[str, Any]) -> list[str]:
    """What is wrong with `source` given these declared variables; empty when nothing is."""
    program = cel.compile(source)
    code = _STRING.sub(lambda m: " " * len(m.group()), source)  # no paths inside literals
    bound = set(_BOUND.findall(code))
    found = [
        f"unknown variable '{name}' (known: {', '.join(sorted(variables))})"
        for name in program.variables()
        if name not in variables and name not in bound
    ]
    for root, node in variables.items():
        found += _path_problems(code, root, node)
    if not found:
        found += _sample_problems(program, {k: sample_of(v) for k, v in variables.items()})
    return found


def _path_problems(code: str, root: str, node: Any) -> list[str]:
    out: list[str] = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(root)}\b", code):
        here, path, at = node, root, match.end()
        while isinstance(here, Closed) and (step := _SEGMENT.match(code, at)):
            if re.match(r"\s*\(", code[step.end() :]):
                break  # a method call (`.startsWith(`), not a field
            name, at = step.group(1), step.end()
            if not here.declares(name):
                known = ", ".join(sorted(here.fields))
                out.append(f"{path} has no field '{name}' (known: {known})")
                break
            here, path = here.child(name), f"{path}.{name}"
    return out


def _sample_problems(program: Any, sample: dict[str, Any]) -> list[str]:
    try:
        program.execute(sample)
    except TypeError as exc:
        return [f"type mismatch: {str(exc).split('. ')[0]}"]
    except RuntimeError as exc:
        message = str(exc)
        if message.startswith("Undefined variable or function"):
            return [message.split(". ", maxsplit=1)[0]]
    except (ValueError, KeyError):
        pass  # a key an open map lacks in the sample, a value the sample cannot stand for
    return []


def sample_of(node: Any) -> Any:
    """The typed sample value a declared shape stands for."""
    if isinstance(node, Closed):
        return {k: sample_of(v) for k, v in node.fields.items()}
    if isinstance(node, Open):
        return dict(node.sample)
    return node


def condition_checker(variables: Mapping[str, Any]) -> Any:
    """A pydantic field validator: syntax first (`shared.cel`), then the checks above."""

    def check(source: str | None) -> str | None:
        check_expression(source)
        if source is not None and (found := problems(source, variables)):
            raise ValueError(f"CEL: {'; '.join(found)}")
        return source

    return check
