"""The envelope accepts what Segment clients send and names the field of anything it refuses."""

from __future__ import annotations

import pytest

from shared.events import AliasEvent, InvalidEvent, TrackEvent, parse_event


def test_track_event_with_camel_case_fields() -> None:
    event = parse_event(
        b'{"type":"track","messageId":"m1","userId":42,"event":"Order Completed",'
        b'"timestamp":"2026-01-02T03:04:05","properties":{"revenue":12.5}}'
    )
    assert isinstance(event, TrackEvent)
    assert event.user_id == "42"  # numeric ids are identities too
    assert event.timestamp.utcoffset() is not None  # naive timestamps read as UTC
    assert event.identity() == "user:42"
    assert event.to_wire()["messageId"] == "m1"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "track", "userId": "u", "event": "X"}, "messageId"),
        ({"type": "track", "messageId": "m", "userId": "u"}, "event"),
        ({"type": "launch", "messageId": "m", "userId": "u"}, "type"),
        ({"messageId": "m", "userId": "u"}, "type"),
        ({"type": "track", "messageId": "m", "event": "X"}, "userId or anonymousId"),
        ({"type": "alias", "messageId": "m", "userId": "u"}, "previousId"),
        ({"type": "track", "messageId": "m", "userId": "u", "event": "X", "timestamp": "soon"},
         "timestamp"),
    ],
)  # fmt: skip
def test_invalid_envelopes_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent, match=field):
        parse_event(payload)


def test_alias_links_previous_id() -> None:
    event = parse_event({"type": "alias", "messageId": "m", "userId": "u", "previousId": "a"})
    assert isinstance(event, AliasEvent)
    assert event.previous_id == "a"


def test_malformed_json_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent):
        parse_event(b"{not json")
