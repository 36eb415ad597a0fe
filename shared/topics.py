"""Topic names and layout, in one place so producers, consumers and `journeyman topics` agree."""

from __future__ import annotations

from dataclasses import dataclass, field

EVENTS = "jm.events"
PROFILE_EVENTS = "jm.profile-events"
PROFILES = "jm.profiles"
SEGMENT_CHANGES = "jm.segment-changes"
DISPATCH = "jm.dispatch"
DEAD_LETTER = "jm.dead-letter"


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created: partitions bound the consumer-group parallelism."""

    name: str
    description: str
    partitions: int = 6
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(EVENTS, "Raw customer events (Segment spec), keyed by userId or anonymousId."),
    TopicSpec(PROFILE_EVENTS, "Each applied event with the profile snapshot, keyed by profile id."),
    TopicSpec(
        PROFILES,
        "Latest profile per customer (compacted), keyed by profile id.",
        config={"cleanup.policy": "compact"},
    ),
    TopicSpec(SEGMENT_CHANGES, "Segment Entered / Segment Exited, keyed by profile id."),
    TopicSpec(DISPATCH, "Send requests from journeys, keyed by profile id."),
    TopicSpec(DEAD_LETTER, "Records no consumer could process, with the reason.", partitions=1),
)
