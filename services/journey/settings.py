"""Settings of the journey service (prefix `JOURNEYMAN_`, like every service)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class JourneySettings(Settings):
    kafka_poll_timeout_ms: int = Field(
        default=20,
        description="Longest wait for a batch, also the broker's longest fetch wait. Shorter "
        "than the services' 100 ms: an immediate send is wanted within 100 ms of its event, and "
        "a broker that holds a fetch for most of its wait even when records arrive (the "
        "embedded Tansu does) would spend all of it before the journey sees the event. A busy "
        "consumer still gets large batches (records pile up while it works); an idle one asks "
        "the broker 50 times a second.",
    )
    journey_lanes: int = Field(
        default=2,
        ge=1,
        description="Groups of customers (split by record key) a batch of 200 records or more "
        "is handled in at once, each in its own transaction: one group's database round trips "
        "overlap another's engine work. A customer's instances, timers and entries are theirs "
        "alone; counters are sharded per transaction, so the groups do not wait on each other.",
    )
    journey_extra_dirs: list[str] = Field(
        default_factory=list,
        description="More directories of journey files loaded after journeys_dir (JSON list).",
    )
    journey_time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="Multiplies every wait, timeout and conversion window (the demo runs days "
        "in seconds with 0.0001); 1 in production.",
    )
    journey_timer_interval_s: float = Field(
        default=0.2, description="Longest pause of the timer worker between two passes."
    )
    journey_timer_batch: int = Field(
        default=5_000, description="Most timers fired per transaction."
    )
    journey_timer_workers: int = Field(
        default=2,
        ge=1,
        description="Timer batches a replica fires at once, each in its own transaction: while "
        "one waits on the database the next is computed. They claim with SKIP LOCKED, as other "
        "replicas do, so no timer is taken twice.",
    )
    journey_refresh_interval_s: float = Field(
        default=5.0, description="How often a replica re-reads published versions and statuses."
    )
    journey_webhook_allow: list[str] = Field(
        default_factory=list,
        description="Internal webhook targets allowed anyway: CIDRs or host names (JSON list).",
    )
    journey_webhook_timeout_s: float = Field(default=10.0, description="Timeout of one call.")
    journey_seen_retention_days: int = Field(
        default=7, description="How long processed message ids are kept for deduplication."
    )
