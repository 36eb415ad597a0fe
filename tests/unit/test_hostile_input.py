"""Hostile input at the edges: whatever bytes arrive, the envelope parser, the record decoder
the definition loaders and the template engine answer with a clear error or a value, never
another exception."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liquid.exceptions import LiquidError

from services.channels.templates import TemplateError, Templates
from services.journey.dsl import Journey
from services.segmenter.definitions import Segment
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


@pytest.mark.parametrize("model", [Journey, Segment])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(text=st.text(max_size=400))
def test_definition_loader_only_raises_definition_error(
    tmp_path: Path, model: type[Journey] | type[Segment], text: str
) -> None:
    """Journey and segment files alike: any text ends in a definition or a file:line error."""
    reliability.record(hostile_inputs_tried=1)
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        outcome = validate_doc(load_yaml(path), model).id
    except DefinitionError as exc:
        outcome = str(exc)
        assert outcome.startswith(str(path))
    assert outcome


_LIQUID_PIECES = st.sampled_from([
    "{{ ", " }}", "{% ", " %}", "if ", "for x in ", "(1..99999999)", "(1..3)", "x", "else",
    "profile.traits.first_name", "event.properties.cart_id", "journey.id", "links.unsubscribe",
    " | default: 'friend'", " | divided_by: 0", " | truncate: -5", " | times: 1e308",
    " | date: '%Y'", " | append: ", " | split: ''", " | size", "{% endfor %}", "{% endif %}",
    "{% raw %}", "{% endraw %}", "{% include 'x' %}", "{% render '../../etc/passwd' %}",
    "{% capture c %}", "{% endcapture %}", "{% assign a = ", "{% cycle 1, 2 %}", "'", '"', "\n",
])  # fmt: skip
template_sources = st.lists(_LIQUID_PIECES | st.text(max_size=8), max_size=30).map("".join)


@settings(max_examples=300)
@given(template_sources, json_values, json_values)
def test_templates_only_fail_with_a_template_error(
    source: str, traits: object, properties: object
) -> None:
    """Whatever a marketer writes and whatever data a customer has: parsing and rendering end
    in text or in a TemplateError/LiquidError (what the service records as a failed send),
    never another exception, a hang past the resource limits, or a file read."""
    reliability.record(hostile_inputs_tried=1)
    templates = Templates(Path("/nonexistent-templates-dir"))
    variables = {
        "profile": {"profile_id": "p", "traits": traits},
        "event": {"properties": properties},
        "journey": {"id": "j", "name": "J", "step_id": "s"},
        "links": {"unsubscribe": "https://x/u"},
    }
    try:
        rendered = templates.parse(source).render(**variables)
    except (TemplateError, LiquidError) as exc:
        rendered = str(exc)
    assert "root:" not in rendered  # nothing of /etc/passwd
