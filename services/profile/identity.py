"""Identity resolution for a batch of events, with no I/O: given which identities are already
known, decide the profile of every event and which new identities to record.

An event names up to two identities (userId, anonymousId; alias adds previousId). If one is known
the event belongs to that profile and the other identities join it, so an anonymous visitor who
logs in keeps their history. When two known profiles meet, the user's profile wins here; merging
their state is the profile-merge step's job.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from shared.events import AliasEvent, Event


def identities_of(event: Event) -> list[str]:
    """The identity keys an event attaches to its profile, strongest (user) first."""
    keys: list[str] = []
    if event.user_id:
        keys.append(f"user:{event.user_id}")
    if event.anonymous_id:
        keys.append(f"anon:{event.anonymous_id}")
    if isinstance(event, AliasEvent):
        keys.append(f"anon:{event.previous_id}")
    return keys


def lookup_keys(event: Event) -> list[str]:
    """Keys that may already name the event's profile; an alias's previousId may be a user id."""
    keys = identities_of(event)
    if isinstance(event, AliasEvent):
        keys.append(f"user:{event.previous_id}")
    return keys


@dataclass
class Resolution:
    profile_of_event: list[str] = field(default_factory=list)
    new_identities: dict[str, str] = field(default_factory=dict)
    new_profiles: set[str] = field(default_factory=set)


def resolve(
    events: Iterable[Event],
    known: Mapping[str, str],
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Resolution:
    """Assign a profile to each event in order; later events see identities earlier ones created."""
    owners = dict(known)
    result = Resolution()
    for event in events:
        profile_id = next((owners[k] for k in lookup_keys(event) if k in owners), None)
        if profile_id is None:
            profile_id = new_id()
            result.new_profiles.add(profile_id)
        for key in identities_of(event):
            if key not in owners:
                owners[key] = profile_id
                result.new_identities[key] = profile_id
        result.profile_of_event.append(profile_id)
    return result
