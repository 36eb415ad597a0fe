"""CloudEvents 1.0 attributes in Kafka binary mode, so routing, dedupe and tracing need no body
parse.

https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Headers = list[tuple[str, bytes]]


def new_traceparent() -> str:
    """A fresh W3C trace context: version 00, random trace and span ids, sampled.

    Ids identify, they protect nothing: `random` (seeded from the OS at start) draws them
    without the system call `secrets` makes for each, and one record per event needs one."""
    return f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue the caller's trace with a new span id, or start one."""
    parts = parent.split("-") if parent else ()
    if len(parts) == 4 and len(parts[1]) == 32:
        return f"00-{parts[1]}-{random.getrandbits(64):016x}-{parts[3]}"
    return new_traceparent()


def binary_headers(
    *,
    event_id: str,
    event_type: str,
    source: str,
    time: datetime | None = None,
    subject: str | None = None,
    traceparent: str | None = None,
) -> Headers:
    """The `ce_*` headers of one record (content type JSON)."""
    stamp = (time or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", stamp.encode()),
        ("content-type", b"application/json"),
        ("traceparent", (traceparent or new_traceparent()).encode()),
    ]
    if subject:
        headers.append(("ce_subject", subject.encode()))
    return headers


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Record headers as text; later duplicates win, as in most Kafka clients."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or () if v is not None}


def attributes(headers: Mapping[str, str]) -> dict[str, str]:
    """The CloudEvents attributes (without the `ce_` prefix) found in a header map."""
    return {k[3:]: v for k, v in headers.items() if k.startswith("ce_")}


def unwrap_structured(body: Any) -> Any:
    """A CloudEvents structured-mode envelope carries the message in `data`; binary mode is bare."""
    if isinstance(body, dict) and "specversion" in body and isinstance(body.get("data"), dict):
        return body["data"]
    return body
