"""The send policy, with no I/O: may this message go to this customer now, to which address, and
if not, why, and when to try again.

One call decides a whole batch (`decide_batch`), so every journey is judged together: dispatches
are taken in priority order (highest first, then oldest), and each one that may go counts
against the frequency caps of those that follow. The checks, in order, each with its reason:

- `erased`: the customer was erased (GDPR);
- `no address`: no email / phone / push token / webhook URL to send to;
- `suppressed address`: the address is on the suppression list (bounces, complaints, ops);
- `no consent`: consent is read per channel and message type from the profile
  (`consent.<channel>.<type>`, else `consent.<channel>.all`, each `{"granted", "source", "at"}`
  as the profile service keeps it). Transactional messages go unless refused; every other type
  needs an explicit grant; `traits.unsubscribed` refuses all but transactional. An opt-out made
  through a link of ours (an `OptOut`) wins over any grant older than it;
- `quiet hours`: deferred to the end of the quiet window in the customer's time zone;
- `capped`: over a frequency cap (per channel and message type, rolling window); deferred to
  the moment the oldest counted send leaves the window, or dropped, as the cap says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.contracts import ERASED_VERSION
from shared.customer_time import customer_zone

TRANSACTIONAL = "transactional"
ALL = "all"
Outcome = Literal["send", "suppressed", "deferred"]


@dataclass(frozen=True)
class CapRule:
    """At most `limit` messages of `message_type` on `channel` per customer in `window`
    (`*` matches any channel or type, each counted apart)."""

    channel: str
    message_type: str
    limit: int
    window: timedelta
    on_cap: Literal["defer", "drop"] = "defer"

    def applies(self, channel: str, message_type: str) -> bool:
        return self.channel in ("*", channel) and self.message_type in ("*", message_type)


@dataclass(frozen=True)
class QuietHours:
    """Local times between which nothing non-exempt is sent (`start` > `end` spans midnight)."""

    start: time
    end: time

    def next_allowed(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """None when `now` is outside the window, else the moment the window ends (UTC-aware)."""
        local = now.astimezone(zone)
        t = local.time()
        if self.start == self.end:
            return None
        inside = (
            self.start <= t < self.end
            if self.start < self.end
            else (t >= self.start or t < self.end)
        )
        if not inside:
            return None
        end_day = local.date()
        if self.start > self.end and t >= self.start:
            end_day += timedelta(days=1)
        # Built as a wall-clock time in the zone, so a DST change moves it as the customer
        # expects: 08:00 is 08:00 local whatever the offset that day.
        return datetime.combine(end_day, self.end, tzinfo=zone)


@dataclass(frozen=True)
class PolicyConfig:
    caps: tuple[CapRule, ...] = ()
    quiet_hours: QuietHours | None = None
    quiet_hours_exempt: frozenset[str] = frozenset({TRANSACTIONAL})
    cap_exempt: frozenset[str] = frozenset({TRANSACTIONAL})
    cap_exempt_journeys: frozenset[str] = frozenset()
    default_timezone: str = "UTC"

    @property
    def longest_window(self) -> timedelta:
        return max((c.window for c in self.caps), default=timedelta(0))


@dataclass(frozen=True)
class Candidate:
    """A dispatch as the policy sees it."""

    dispatch_id: str
    profile_id: str
    channel: str
    message_type: str
    priority: int
    requested_at: datetime
    ignore_caps: bool = False  # the journey step opted out of frequency capping


@dataclass(frozen=True)
class OptOut:
    """An opt-out made through one of our links, held until the profile's consent catches up."""

    channel: str
    message_type: str
    at: str  # ISO time, compared with consent entries' `at`


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    address: str | None = None
    not_before: datetime | None = None

    @property
    def send(self) -> bool:
        return self.outcome == "send"


@dataclass
class Facts:
    """What the policy reads for a batch, loaded in one go by the caller."""

    profiles: Mapping[str, Mapping[str, Any]]
    optouts: Mapping[str, Sequence[OptOut]] = field(default_factory=dict)
    suppressed: set[tuple[str, str]] = field(default_factory=set)  # (channel, address)
    sent: dict[str, list[tuple[str, str, datetime]]] = field(default_factory=dict)
    """Sends already counted, by profile: (channel, message type, time)."""


ADDRESS_TRAIT = {"email": "email", "sms": "phone", "webhook": "webhook_url"}


def address_of(profile: Mapping[str, Any], channel: str) -> str | None:
    """Where a channel reaches this customer. Push goes to the newest device token: the
    `push_tokens` trait (a list, last is newest) or a single `push_token` trait."""
    traits = profile.get("traits") or {}
    if channel == "push":
        tokens = traits.get("push_tokens")
        if isinstance(tokens, list):
            found = [t for t in tokens if isinstance(t, str) and t.strip()]
            return found[-1] if found else None
        value = traits.get("push_token")
    else:
        value = traits.get(ADDRESS_TRAIT.get(channel, channel))
    return value.strip() if isinstance(value, str) and value.strip() else None


def _entry(consent: Mapping[str, Any], channel: str, message_type: str) -> dict[str, Any] | None:
    per_channel = consent.get(channel) or {}
    for key in (message_type, ALL):
        entry = per_channel.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("granted"), bool):
            return entry
        if isinstance(entry, bool):
            return {"granted": entry, "at": ""}
    return None


def consents(
    profile: Mapping[str, Any], channel: str, message_type: str, optouts: Iterable[OptOut] = ()
) -> bool:
    traits = profile.get("traits") or {}
    entry = _entry(profile.get("consent") or {}, channel, message_type)
    granted = None if entry is None else bool(entry["granted"])
    for opt in optouts:
        if (
            opt.channel == channel
            and opt.message_type in (message_type, ALL)
            and message_type != TRANSACTIONAL
            and granted is not False
            and str((entry or {}).get("at", "")) <= opt.at
        ):
            granted = False
    if message_type == TRANSACTIONAL:
        return granted is not False
    return granted is True and not traits.get("unsubscribed")


def _refusal(c: Candidate, profile: Mapping[str, Any], facts: Facts) -> Decision | str:
    """Why this customer may not get this message at all, or the address to send to."""
    traits = profile.get("traits") or {}
    if traits.get("erased") or profile.get("version") == ERASED_VERSION:
        return Decision("suppressed", "erased")
    address = address_of(profile, c.channel)
    if address is None:
        return Decision("suppressed", "no address")
    if (c.channel, address.lower()) in facts.suppressed:
        return Decision("suppressed", "suppressed address", address)
    if not consents(profile, c.channel, c.message_type, facts.optouts.get(c.profile_id, ())):
        return Decision("suppressed", "no consent", address)
    return address


def decide_one(c: Candidate, facts: Facts, config: PolicyConfig, now: datetime) -> Decision:
    """The decision for one dispatch given the sends counted so far (which it does not change)."""
    profile = facts.profiles.get(c.profile_id) or {}
    refused = _refusal(c, profile, facts)
    if isinstance(refused, Decision):
        return refused
    address = refused
    if config.quiet_hours is not None and c.message_type not in config.quiet_hours_exempt:
        until = config.quiet_hours.next_allowed(
            now, customer_zone(profile, config.default_timezone)
        )
        if until is not None:
            return Decision("deferred", "quiet hours", address, until)
    if c.message_type not in config.cap_exempt and not c.ignore_caps:
        sent = facts.sent.get(c.profile_id, [])
        for rule in config.caps:
            if not rule.applies(c.channel, c.message_type):
                continue
            counted = sorted(
                t for ch, mt, t in sent
                if t > now - rule.window and rule.applies(ch, mt) and ch == c.channel
                and (rule.message_type == "*" or mt == c.message_type)
            )  # fmt: skip
            if len(counted) >= rule.limit:
                reason = f"capped: {rule.limit} per {_span(rule.window)}"
                if rule.on_cap == "drop":
                    return Decision("suppressed", reason, address)
                frees_at = counted[len(counted) - rule.limit] + rule.window
                return Decision("deferred", reason, address, frees_at)
    return Decision("send", "allowed", address)


def decide_batch(
    candidates: Sequence[Candidate], facts: Facts, config: PolicyConfig, now: datetime
) -> dict[str, Decision]:
    """Decide every dispatch of a batch: higher priority first, each send counted before the
    next is judged, so three journeys competing for one cap slot cannot all win it."""
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.requested_at, c.dispatch_id))
    out: dict[str, Decision] = {}
    for c in ordered:
        decision = decide_one(c, facts, config, now)
        out[c.dispatch_id] = decision
        if decision.send:
            facts.sent.setdefault(c.profile_id, []).append((c.channel, c.message_type, now))
    return out


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_window(text: str) -> timedelta:
    """`7d`, `24h`, `30m`, `90s` → timedelta; ValueError naming the text otherwise."""
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    text = text.strip()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"window {text!r}: expected a number and d, h, m or s, e.g. 7d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])
