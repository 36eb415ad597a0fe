"""The journey engine's hot-path shortcuts give what the plain way gives: the record decoder,
the instance ids, the remembered date-trigger occurrences, the CEL variables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.journey.compiled import CompiledJourney
from services.journey.consumer import _profile_event
from services.journey.dsl import Journey
from services.journey.engine import _NAMESPACE, instance_id
from services.journey.service import next_date, next_date_of
from shared.consumer import Record
from shared.contracts import ProfileEventRecord, ProfileSnapshot


def _record(value: bytes | None) -> Record:
    return Record("jm.profile-events", 0, 0, None, value, {}, (), 0)


def test_the_decoder_validates_from_bytes_with_the_usual_reasons() -> None:
    body = {
        "event": {"type": "track", "event": "Signed Up", "properties": {"n": 1.5}},
        "profile": {"profile_id": "p", "version": 2, "updated_at": "2026-01-01T00:00:00Z"},
    }
    decoded = _profile_event(_record(orjson.dumps(body)))
    assert decoded == ProfileEventRecord.model_validate(body)
    with pytest.raises(ValueError, match=r"^malformed JSON"):
        _profile_event(_record(b'{"event": '))
    with pytest.raises(ValueError, match=r"^invalid ProfileEventRecord"):
        _profile_event(_record(b'{"event": {}}'))
    with pytest.raises(ValueError, match="tombstone"):
        _profile_event(_record(None))


@pytest.mark.parametrize("n", range(50))
def test_instance_ids_are_the_uuid5_ids(n: int) -> None:
    parts = (f"journey-{n}", n, f"profil-é-{n * 7919}", f"key:{n}" * (n % 4))
    name = "|".join(str(p) for p in parts)
    assert instance_id(*parts) == str(uuid.uuid5(_NAMESPACE, name))


def _birthday(yearly: bool = True) -> CompiledJourney:
    return CompiledJourney(
        Journey.model_validate({
            "id": "bd", "name": "bd", "version": 1,
            "trigger": {"date_attribute": "birthday", "yearly": yearly, "at": "09:00"},
            "steps": [{"id": "s", "type": "send", "channel": "email", "template": "t"}],
        })
    )  # fmt: skip


def _snapshot(birthday: str, zone: str | None) -> ProfileSnapshot:
    traits = {"birthday": birthday} | ({"timezone": zone} if zone else {})
    return ProfileSnapshot(profile_id="p", version=1, updated_at=datetime.now(UTC), traits=traits)


@pytest.mark.parametrize("yearly", [True, False])
def test_remembered_occurrences_are_the_computed_ones(yearly: bool) -> None:
    """Clock moving forward an hour at a time over a year and a half, across time zones and
    leap days: the remembered answer always equals the computed one."""
    cj = _birthday(yearly)
    people = [
        _snapshot(day, zone)
        for day in ("1990-05-17", "2000-02-29", "2026-12-31", "2027-01-01", "1980-03-01")
        for zone in (None, "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Paris")
    ]
    since = datetime(2026, 12, 25, tzinfo=UTC)
    while since < datetime(2028, 6, 1, tzinfo=UTC):
        for person in people:
            expected = next_date(cj, person.model_dump(mode="json"), since)
            assert next_date_of(cj, person, since) == expected, (person.traits, since)
        since += timedelta(hours=7)


def test_conditions_get_only_the_variables_they_read() -> None:
    cj = CompiledJourney(
        Journey.model_validate({
            "id": "c", "name": "c", "version": 1,
            "trigger": {"event": "E", "condition": "event.properties.n > 1"},
            "steps": [{"id": "b", "type": "branch", "cases": [
                {"condition": "profile.traits.vip == true && journey.group == 'treatment'",
                 "next": "b"}]}],
        })
    )  # fmt: skip
    trigger = "event.properties.n > 1"
    branch = "profile.traits.vip == true && journey.group == 'treatment'"
    assert cj.uses(trigger, "event")
    assert not cj.uses(trigger, "profile")
    assert cj.uses(branch, "profile")
    assert cj.uses(branch, "journey")
    assert not cj.uses(None, "event")
    assert cj.holds(trigger, {"event": {"properties": {"n": 2}}})
    assert cj.holds(trigger, {"event": {"properties": {"n": 2}}, "profile": object()})
    assert not cj.holds(branch, {"profile": {"traits": {"vip": True}}})  # journey missing
    assert cj.holds(
        branch, {"profile": {"traits": {"vip": True}}, "journey": {"group": "treatment"}}
    )


def test_conditions_reading_only_event_properties_get_only_them() -> None:
    cj = CompiledJourney(
        Journey.model_validate({
            "id": "c", "name": "c", "version": 1,
            "trigger": {"event": "E", "condition": "has(event.properties.cart_id)"},
            "exit_on": [{"event": "F", "condition": "event.event == 'F'"}],
            "steps": [{"id": "s", "type": "send", "channel": "email", "template": "t"}],
        })
    )  # fmt: skip
    event = {"type": "track", "event": "F", "properties": {"cart_id": "c"}}
    assert cj.holds("has(event.properties.cart_id)", {"event": event})
    assert not cj.holds("has(event.properties.cart_id)", {"event": {"event": "E"}})
    assert cj.holds("event.event == 'F'", {"event": event})  # not pruned: reads `event.event`
