"""The benchmarks' fixed-rate load runs in a child process and times only the events it awaits:
an echo on the real broker stands in for the service under test."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from journeyman.bench.common import FixedRateLoad, fixed_rate_latency
from shared.kafka import ensure_topics
from shared.topics import TopicSpec


def _event(profile_id: str, kind: str) -> bytes:
    return orjson.dumps({"profile_id": profile_id, "kind": kind})


async def _echo(bootstrap: str, source: str, sink: str, stop: asyncio.Event) -> int:
    """Answers every `ask` with `{"answer": "yes"}` and every `noise` with `"no"`."""
    reader = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=None,
                              auto_offset_reset="earliest", fetch_max_wait_ms=10)  # fmt: skip
    writer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await reader.start()
    await writer.start()
    seen = 0
    try:
        while not stop.is_set():
            for msgs in (await reader.getmany(timeout_ms=50)).values():
                for msg in msgs:
                    body = orjson.loads(msg.value or b"{}")
                    answer = "yes" if body["kind"] == "ask" else "no"
                    reply = {"profile_id": body["profile_id"], "answer": answer}
                    await writer.send(sink, orjson.dumps(reply), key=msg.key)
                    seen += 1
    finally:
        await reader.stop()
        await writer.stop()
    return seen


async def test_the_load_times_each_awaited_event_and_sends_the_others_as_load(
    kafka_bootstrap: str,
) -> None:
    run = uuid.uuid4().hex[:6]
    source, sink = f"bench.load-in-{run}", f"bench.load-out-{run}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(source, "in"), TopicSpec(sink, "out")])
    events = [(f"{run}-{i}", "ask" if i % 3 == 0 else "noise") for i in range(30)]
    stop = asyncio.Event()
    echo = asyncio.create_task(_echo(kafka_bootstrap, source, sink, stop))
    load = FixedRateLoad(
        kafka_bootstrap, source, sink, 200.0, events, _event, frozenset({"ask"}), ("answer", "yes")
    )
    try:
        latencies = await fixed_rate_latency(load, timeout_s=60)
    finally:
        stop.set()
        seen = await echo
    assert len(latencies) == 10  # one per awaited event; the noise is answered "no"
    assert all(0 < ms < 30_000 for ms in latencies)
    assert seen == 30  # every event was sent, the noise too
