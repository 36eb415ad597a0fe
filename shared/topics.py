"""Topic names and layout, in one place so producers, consumers and `journeyman topics` agree."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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


def for_cluster(
    specs: tuple[TopicSpec, ...] = TOPICS,
    *,
    replication: int = 1,
    partitions: int | None = None,
    retention_hours: int | None = None,
) -> tuple[TopicSpec, ...]:
    """The topics as a production cluster wants them: more partitions (more replicas can share
    the work; the dead-letter topic keeps one, so its order is the order of failures), a
    retention for the non-compacted topics, and `min.insync.replicas` so that an acks=all
    write survives the loss of a broker."""
    out = []
    for spec in specs:
        config = dict(spec.config)
        if replication > 1:
            config["min.insync.replicas"] = str(min(2, replication - 1))
        if retention_hours is not None and config.get("cleanup.policy") != "compact":
            config["retention.ms"] = str(retention_hours * 3_600_000)
        count = spec.partitions if partitions is None or spec.partitions == 1 else partitions
        out.append(replace(spec, partitions=count, config=config))
    return tuple(out)
