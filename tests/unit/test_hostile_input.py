"""Hostile input at the edges: whatever bytes arrive, the envelope parser, the record decoder
and the definition loaders answer with a clear error or a value, never another exception."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.journey.dsl import Journey
from shared.consumer import Record
from shared.decoding import decode_event
from shared.events import InvalidEvent, parse_event
from shared.yamldoc import DefinitionError, load_yaml, validate_doc
from tests import reliability

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "alias", "group", "x"]),
        "messageId": json_values,
        "userId": json_values,
        "anonymousId": json_values,
        "event": json_values,
        "timestamp": json_values,
        "properties": json_values,
        "traits": json_values,
        "previousId": json_values,
        "groupId": json_values,
    },
)


@given(envelope_like)
def test_envelope_parser_only_raises_invalid_event(payload: dict[str, object]) -> None:
    reliability.record(hostile_inputs_tried=1)
    try:
        outcome = parse_event(payload).message_id
    except InvalidEvent as exc:
        outcome = str(exc)  # names what is wrong
    assert outcome


@given(st.binary(max_size=300) | envelope_like.map(orjson.dumps))
def test_record_decoder_only_raises_value_error(value: bytes) -> None:
    reliability.record(hostile_inputs_tried=1)
    record = Record("jm.events", 0, 0, None, value, {}, (), 0)
    try:
        outcome = decode_event(record).message_id
    except ValueError as exc:
        outcome = str(exc)
    assert outcome


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.text(max_size=400))
def test_definition_loader_only_raises_definition_error(tmp_path: Path, text: str) -> None:
    reliability.record(hostile_inputs_tried=1)
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        outcome = validate_doc(load_yaml(path), Journey).id
    except DefinitionError as exc:
        outcome = str(exc)
        assert outcome.startswith(str(path))
    assert outcome
