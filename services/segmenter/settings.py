"""Settings of the segmenter (prefix `JOURNEYMAN_`, like every service)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class SegmenterSettings(Settings):
    kafka_poll_timeout_ms: int = Field(
        default=20,
        description="Longest wait for a batch, also the broker's longest fetch wait. Shorter "
        "than the services' 100 ms: a segment change is wanted within 100 ms of its profile "
        "event, and a broker that holds a fetch for its whole wait (the embedded Tansu does) "
        "would spend a fifth of that before the segmenter sees the event. An idle segmenter "
        "asks the broker 50 times a second.",
    )
    segmenter_lanes: int = Field(
        default=2,
        ge=1,
        description="Groups of customers (split by record key) a batch of 200 records or more "
        "is decided in at once, each in its own transaction: one group's database round trips "
        "overlap another's evaluation. Customers never share rows, so the groups never wait on "
        "each other.",
    )
    segmenter_clock_interval_s: float = Field(
        default=1.0, description="How often the clock loop looks for due segment timers."
    )
    segmenter_timer_batch: int = Field(
        default=1_000, description="Most due timers decided in one clock pass."
    )
    segmenter_refresh_interval_s: float = Field(
        default=10.0,
        description="How often each replica re-reads enable/disable switches and API definitions.",
    )
    segmenter_prune_interval_s: float = Field(
        default=3_600.0, description="How often event facts beyond every window are deleted."
    )
    segmenter_rfm_interval_s: float = Field(
        default=3_600.0, description="How often RFM scores are recomputed for the whole base."
    )
    segmenter_rfm_lanes: int = Field(
        default=2,
        ge=1,
        description="Connections an RFM recompute writes the base with at once, each a share "
        "of the customers (one PostgreSQL backend uses one core). All read one snapshot; they "
        "commit once every lane is done, or all roll back.",
    )
    segmenter_rfm_file: str = Field(
        default="segments/rfm.yaml",
        description="RFM segment boundaries; built-in defaults when the file is absent.",
    )
    segmenter_preview_limit: int = Field(
        default=200_000, description="Most stored profiles a draft preview evaluates."
    )
