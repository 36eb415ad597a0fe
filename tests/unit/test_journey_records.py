"""The batch's dispatch records, built with the shortcuts of the timer path (headers built once,
JSON written by orjson, trace ids drawn for the whole batch), are the records the plain way
gives: same value bytes, same CloudEvents headers, valid and distinct new traces."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from services.journey.engine import Engine
from services.journey.registry import Registry
from services.journey.state import Dispatch, Effects, StoredProfile
from services.journey.work import SOURCE, Work
from shared.cloudevents import binary_headers
from shared.codec import dumps
from shared.contracts import DispatchRequest, ProfileSnapshot

NOW = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
TRACE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


def _dispatch(n: int, profile_id: str, stored: bool = False) -> Dispatch:
    raw = (
        f'{{"profile_id": "{profile_id}", "version": 3, "updated_at": "2026-01-01T00:00:00Z",'
        ' "traits": {"email": "a@example.com", "score": 1.5}, "extra": {"k": [1, 2]}}'
    )
    profile = StoredProfile(profile_id, raw) if stored else ProfileSnapshot.model_validate_json(raw)
    return Dispatch(
        dispatch_id=f"inst-{n}:ping",
        profile_id=profile_id,
        channel="email",
        message_type="marketing",
        template="welcome",
        journey_id="j",
        journey_version=1,
        step_id="ping",
        priority=0,
        data={
            "event": {"type": "track", "properties": {"x": 2.0}},
            "journey": {"id": "j", "instance_id": f"inst-{n}"},
        },
        profile=profile,
        requested_at=NOW,
    )


def test_dispatch_records_match_the_plain_encoding() -> None:
    work = Work(Registry(), Engine(), NOW)
    work.fx = Effects(dispatches=[_dispatch(n, f"p-{n}") for n in range(3)] + [_dispatch(9, "")])
    parent = "00-0123456789abcdef0123456789abcdef-0011223344556677-01"
    work.traceparents["inst-1"] = parent
    records = work.records()
    assert len(records) == 4
    traces = []
    for record, request in zip(records, work.fx.dispatches, strict=True):
        assert record.value == dumps(request.request().model_dump(mode="json"))
        assert record.key == request.profile_id.encode()
        trace = dict(record.headers)["traceparent"].decode()
        assert TRACE.fullmatch(trace)
        traces.append(trace)
        expected = binary_headers(
            event_id=request.dispatch_id,
            event_type="journeyman.dispatch",
            source=SOURCE,
            time=NOW,
            subject=request.profile_id,
            traceparent=trace,
        )
        assert record.headers == expected
    assert traces[1].split("-")[1] == parent.split("-")[1]  # continues the caller's trace
    assert traces[1] != parent
    assert len({t.split("-")[1] for t in traces}) == 4  # the others are new, distinct traces


def test_a_stored_profile_is_copied_as_stored_and_reads_back_the_same() -> None:
    """The timer path copies the stored snapshot's JSON text into the dispatch: the record
    is another spelling of the same request, which the channels validate as usual."""
    work = Work(Registry(), Engine(), NOW)
    stored, decoded = _dispatch(1, "p-1", stored=True), _dispatch(1, "p-1")
    work.fx = Effects(dispatches=[stored])
    (record,) = work.records()
    assert DispatchRequest.model_validate_json(record.value) == decoded.request()
    assert stored.request() == decoded.request()
    assert isinstance(stored.profile, StoredProfile)
    assert stored.profile.user_id is None
    assert stored.profile.doc["traits"]["score"] == 1.5
