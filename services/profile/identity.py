"""Identity resolution for a batch of events, with no I/O: given which identities are already
known (and which user each known profile belongs to), decide the profile of every event, which
new identities to record and which profiles to merge.

Identities: `user:<userId>`, `anon:<anonymousId>`, `email:<address>` and `phone:<number>` (from
identify traits, normalised); `alias` adds `previousId`. An event joins a profile one of its
identities already names and attaches its other identities to it, so an anonymous visitor who
logs in keeps their history. When its identities name two profiles, they are one person and are
merged, the survivor being the one with a user id (else the first named), unless both carry
different user ids: a shared device or a family email then does not fuse two customers (an
explicit `alias` does). An event whose userId differs from the user of the profile its other
identities name gets the profile of its own user.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.profile.traits import InvalidTrait, identity_keys, normalise_traits
from shared.events import AliasEvent, Event, IdentifyEvent


def trait_identities(event: Event) -> list[str]:
    if not isinstance(event, IdentifyEvent):
        return []
    wanted = {k: event.traits[k] for k in ("email", "phone") if event.traits.get(k) is not None}
    if not wanted:
        return []
    try:
        return identity_keys(normalise_traits(wanted))
    except InvalidTrait:
        return []


def identities_of(event: Event) -> list[str]:
    """The identity keys an event attaches to its profile, strongest (user) first."""
    keys: list[str] = []
    if event.user_id:
        keys.append(f"user:{event.user_id}")
    if event.anonymous_id:
        keys.append(f"anon:{event.anonymous_id}")
    if isinstance(event, AliasEvent):
        keys.append(f"anon:{event.previous_id}")
    keys.extend(trait_identities(event))
    return keys


def lookup_keys(event: Event) -> list[str]:
    """Keys that may already name the event's profile; an alias's previousId may be a user id."""
    keys = identities_of(event)
    if isinstance(event, AliasEvent):
        keys.append(f"user:{event.previous_id}")
    return keys


@dataclass(frozen=True)
class Merge:
    """Before applying event `at`, fold `merged` into `into`."""

    at: int
    merged: str
    into: str


@dataclass
class Resolution:
    profile_of_event: list[str] = field(default_factory=list)
    new_identities: dict[str, str] = field(default_factory=dict)
    new_profiles: set[str] = field(default_factory=set)
    merges: list[Merge] = field(default_factory=list)


def resolve(
    events: Iterable[Event],
    known: Mapping[str, str],
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    users: Mapping[str, str | None] | None = None,
    keys: Sequence[list[str]] | None = None,
) -> Resolution:
    """Assign a profile to each event in order; later events see what earlier ones did.

    `users` maps known profile ids to their user id (None for anonymous profiles); `keys` are
    the events' `lookup_keys`, when the caller has them already."""
    owners = dict(known)
    user_of: dict[str, str | None] = dict(users or {})
    moved: dict[str, str] = {}
    result = Resolution()

    def current(profile_id: str) -> str:
        while profile_id in moved:
            profile_id = moved[profile_id]
        return profile_id

    for index, event in enumerate(events):
        explicit = isinstance(event, AliasEvent)
        looked = keys[index] if keys is not None else lookup_keys(event)
        found = list(dict.fromkeys(current(owners[k]) for k in looked if k in owners))
        if event.user_id and not explicit:
            found = [p for p in found if user_of.get(p) in (None, event.user_id)]
        found.sort(key=lambda p: user_of.get(p) is None)  # stable: a user's profile first
        if not found:
            profile_id = new_id()
            result.new_profiles.add(profile_id)
        else:
            profile_id = found[0]
            for other in found[1:]:
                mine, theirs = user_of.get(profile_id), user_of.get(other)
                if explicit or not (mine and theirs and mine != theirs):
                    result.merges.append(Merge(index, other, profile_id))
                    moved[other] = profile_id
                    user_of[profile_id] = mine or theirs
        if event.user_id and user_of.get(profile_id) is None:
            user_of[profile_id] = event.user_id
        attached = looked[:-1] if explicit else looked  # an alias looks up user:previousId too
        for key in attached:
            if key not in owners:
                owners[key] = profile_id
                result.new_identities[key] = profile_id
        result.profile_of_event.append(profile_id)
    result.new_identities = {k: current(v) for k, v in result.new_identities.items()}
    return result
