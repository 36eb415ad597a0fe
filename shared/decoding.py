"""Turning consumed records into validated messages, with a reason for every one that is not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from shared.cloudevents import unwrap_structured
from shared.consumer import Record, Rejected
from shared.events import Event, InvalidEvent, describe_errors, parse_event

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def decode_all(
    records: Sequence[Record], decode: Callable[[Record], T]
) -> tuple[list[tuple[Record, T]], list[Rejected]]:
    """Split a batch into decoded records and rejections (`decode` raises ValueError)."""
    good: list[tuple[Record, T]] = []
    bad: list[Rejected] = []
    for record in records:
        try:
            good.append((record, decode(record)))
        except ValueError as exc:
            bad.append(Rejected(record, str(exc)))
    return good, bad


def json_body(record: Record) -> Any:
    if record.value is None:
        raise ValueError("empty record value (tombstone) where a message was expected")
    try:
        return orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc}") from exc


def decode_event(record: Record) -> Event:
    """A Segment message, in CloudEvents binary mode (bare) or structured mode (in `data`)."""
    body = unwrap_structured(json_body(record))
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    try:
        return parse_event(body)
    except InvalidEvent as exc:
        raise ValueError(f"invalid event: {exc}") from exc


def model_decoder(model: type[M]) -> Callable[[Record], M]:
    """A decoder validating records against one of the internal contracts.

    pydantic parses the bytes itself: half the cost of building orjson's dict and validating
    that (11 against 22 µs for a profile event). Our services write these records with orjson,
    so both parsers read them alike; rejections keep the wording of `json_body`."""

    def decode(record: Record) -> M:
        if record.value is None:
            raise ValueError("empty record value (tombstone) where a message was expected")
        try:
            return model.model_validate_json(record.value)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise ValueError(f"malformed JSON: {describe_errors(exc)}") from exc
            raise ValueError(f"invalid {model.__name__}: {describe_errors(exc)}") from exc

    return decode
