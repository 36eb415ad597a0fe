"""Prometheus metrics every service exposes at `/metrics`; names follow Prometheus conventions."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "jm_records_consumed_total", "Kafka records handed to a handler.", ["group", "topic"]
)
RECORDS_DEAD_LETTERED = Counter(
    "jm_records_dead_lettered_total", "Records sent to jm.dead-letter.", ["group", "topic"]
)
BATCH_SECONDS = Histogram(
    "jm_batch_seconds",
    "Time to handle one consumed batch, commit included.",
    ["group"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_RETRIES = Counter(
    "jm_batch_retries_total", "Batches retried after a transient failure.", ["group"]
)
OUTBOX_PUBLISHED = Counter(
    "jm_outbox_published_total", "Outbox rows published to Kafka.", ["schema"]
)
OUTBOX_PENDING = Gauge(
    "jm_outbox_pending", "Outbox rows seen waiting at the last pass.", ["schema"]
)
