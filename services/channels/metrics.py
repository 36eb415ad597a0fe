"""Prometheus metrics of the channels service."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "jm_channels_decisions_total", "Send-policy decisions.", ["channel", "decision", "reason"]
)
OUTCOMES = Counter("jm_channels_messages_total", "Provider outcomes.", ["channel", "status"])
UNKNOWN = Gauge(
    "jm_channels_unknown_attempts",
    "Attempts ever cut off by a crash between claim and provider answer (maybe sent).",
)
DEFERRED = Gauge("jm_channels_deferred_pending", "Deferred dispatches waiting to come due.")


def count(metric: Counter, labels: Iterable[tuple[str, ...]]) -> None:
    """Count a batch: one increment per label set, by how often it occurs, rather than one
    label lookup and increment per message."""
    for values, times in Tally(labels).items():
        metric.labels(*values).inc(times)
