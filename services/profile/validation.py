"""Rules an event must meet beyond the envelope, the same on HTTP (400) and on Kafka
(dead-letter): typed traits that can be read, a consent document of the right shape, and a
timestamp no more than a day ahead (a clock that far off would corrupt every "last seen")."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.profile.consent import InvalidConsent, parse_update
from services.profile.traits import InvalidTrait, normalise_traits
from shared.events import Event, IdentifyEvent, InvalidEvent

MAX_AHEAD = timedelta(days=1)


def check_event(event: Event, now: datetime) -> None:
    """Raise InvalidEvent naming the field when the event breaks a rule."""
    if event.timestamp > now + MAX_AHEAD:
        raise InvalidEvent("timestamp: more than a day in the future")
    if isinstance(event, IdentifyEvent):
        traits = dict(event.traits)
        update = traits.pop("consent", None)
        try:
            normalise_traits(traits)
            if update is not None:
                parse_update(update, "traits.consent")
        except (InvalidTrait, InvalidConsent) as exc:
            raise InvalidEvent(str(exc)) from exc
