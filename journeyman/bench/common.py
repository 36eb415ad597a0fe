"""What every benchmark shares: a fresh embedded stack, the raw pass-through baseline measured on
the same broker and database, latency percentiles, table sizes, and the table / JSON output."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url

from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres
from shared.kafka import ensure_topics
from shared.migrations import upgrade
from shared.topics import TopicSpec

Batch = list[ConsumerRecord[bytes, bytes]]  # the records of one `getmany`, in partition order


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# Checkpoints done so far, and whether one is running now: an idle checkpointer waits on
# `CheckpointerMain`; while it writes back it waits on the write delay or on the file I/O.
_CHECKPOINT_STATE = (
    "SELECT (SELECT num_done FROM pg_stat_checkpointer), EXISTS (SELECT 1 FROM pg_stat_activity"
    " WHERE backend_type = 'checkpointer' AND wait_event IS DISTINCT FROM 'CheckpointerMain')"
)


@dataclass
class CheckpointWatch:
    """Whether a PostgreSQL checkpoint wrote back during a block; None when the server does
    not say (`num_done` is PostgreSQL 18's)."""

    overlapped: bool | None = None

    def __str__(self) -> str:
        return {True: "yes", False: "no", None: "unknown"}[self.overlapped]


@contextlib.asynccontextmanager
async def checkpoint_watch(dsn: str) -> AsyncIterator[CheckpointWatch]:
    """Watches the block for a checkpoint: one running at its start or end, or one done
    within it. A latency phase that a checkpoint overlaps sees commits wait behind its
    writeback (stop 20 in docs/performance.md), so the benchmarks say so beside their
    percentiles."""
    watch = CheckpointWatch()
    db = await asyncpg.connect(dsn)
    try:
        try:
            done_before, running_before = await db.fetchrow(_CHECKPOINT_STATE)
        except asyncpg.PostgresError:  # an older server: no figure rather than no benchmark
            yield watch
            return
        yield watch
        done_after, running_after = await db.fetchrow(_CHECKPOINT_STATE)
        watch.overlapped = running_before or running_after or done_after > done_before
    finally:
        await db.close()


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (a service's workers, PostgreSQL's backends)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


class CpuAccount:
    """CPU seconds (user + system) each part of the stack used between two readings: each
    process given (the services, the embedded PostgreSQL and broker) with its children, this
    benchmark process, and the rest of the machine (whatever else ran meanwhile), so a run
    says where its two cores went. Processes that started and ended between the readings are
    not counted."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids

    def read(self) -> dict[str, float]:
        part_of: dict[int, str] = {os.getpid(): "bench"}
        for name, pid in self._pids.items():
            with contextlib.suppress(psutil.Error):
                for proc in process_tree(pid):
                    part_of[proc.pid] = name
        used: dict[str, float] = defaultdict(float)
        for pid, part in part_of.items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                used[part] += times.user + times.system
        machine = psutil.cpu_times()
        used["machine"] = machine.user + machine.system + machine.nice + machine.softirq
        return used

    @staticmethod
    def per_event(
        before: dict[str, float], after: dict[str, float], events: int
    ) -> dict[str, float]:
        """µs of CPU per event for each part between two readings; `other` is the machine's
        time that none of the parts account for."""
        spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if k != "machine"}
        spent["other"] = after["machine"] - before["machine"] - sum(spent.values())
        return {k: round(max(v, 0.0) / max(events, 1) * 1e6, 1) for k, v in spent.items()}


def listener_pid(address: str) -> int | None:
    """The local process listening on `address`'s port (`host:port`): the embedded broker or
    PostgreSQL. None when no process of this machine listens there."""
    port = int(address.rsplit(":", 1)[1])
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                pid: int | None = conn.pid
                return pid
    return None


def infrastructure_pids(pg_url: str, bootstrap: str) -> dict[str, int | None]:
    """The broker's and PostgreSQL's processes, when they run on this machine."""
    url = make_url(pg_url)
    return {
        "broker": listener_pid(bootstrap),
        "postgres": listener_pid(f"{url.host}:{url.port or 5432}"),
    }


@dataclass
class CpuShares:
    """Where the machine's CPU went during a block: each part's share of one core, and how
    busy all the machine's cores were (both %). A latency percentile means little without
    them on a small machine: the embedded broker alone can take most of a core."""

    of_one_core: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0


def percent(value: float | None) -> str:
    """A share from `CpuShares` as a table shows it."""
    return "unknown" if value is None else f"{value:.1f}"


@contextlib.contextmanager
def cpu_shares(pids: dict[str, int | None]) -> Iterator[CpuShares]:
    """Measures `CpuShares` over the block for the processes given (with their children);
    a part whose pid is None is left out."""
    account = CpuAccount({name: pid for name, pid in pids.items() if pid is not None})
    shares = CpuShares()
    before, started = account.read(), time.perf_counter()
    yield shares
    after, wall = account.read(), time.perf_counter() - started
    for name in after:
        if name not in {"machine", "bench"}:
            shares.of_one_core[name] = round((after[name] - before[name]) / wall * 100, 1)
    busy = (after["machine"] - before["machine"]) / (wall * (os.cpu_count() or 1))
    shares.machine_busy = round(busy * 100, 1)


@dataclass
class Throughput:
    events: int
    seconds: float
    batch_ms: list[float] = field(default_factory=list)
    cpu_s: float | None = None  # this process's CPU time over `seconds` (threads included)

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def figures(self, prefix: str) -> dict[str, float]:
        figures = {
            f"{prefix}_events_per_s": round(self.per_second, 1),
            f"{prefix}_batch_p50_ms": round(percentile(self.batch_ms, 50), 2),
            f"{prefix}_batch_p99_ms": round(percentile(self.batch_ms, 99), 2),
        }
        if self.cpu_s is not None:
            figures[f"{prefix}_cpu_us_per_event"] = round(self.cpu_s / max(self.events, 1) * 1e6, 1)
        return figures


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.contextmanager
def embedded_stack(name: str) -> Iterator[tuple[Path, str, str]]:
    """A fresh, migrated embedded PostgreSQL and a broker in a temporary directory: (that
    directory, the database URL, the bootstrap servers); stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"jm-bench-{name}-") as tmp:
        work = Path(tmp)
        with (
            EmbeddedPostgres(work / "postgres") as pg,
            EmbeddedKafka(log_file=work / "broker.log") as broker,
        ):
            upgrade(pg.url)
            yield work, pg.url, broker.bootstrap_servers


async def relation_bytes(db: asyncpg.Connection, schema: str, tables: Sequence[str]) -> int:
    """Bytes of these tables of `schema`, indexes and TOAST included."""
    return int(
        await db.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size("
            "format('%I.%I', $1::text, t)::regclass)), 0) FROM unnest($2::text[]) AS t",
            schema,
            list(tables),
        )
    )


async def outbox_emptied(db: asyncpg.Connection, schema: str, poll_s: float) -> None:
    """Return once the service's outbox holds no row: every record written so far was
    published (the relay deletes a row in the transaction that waited for its ack). EXISTS,
    not count(*): counting an outbox full of deleted rows several times a second was itself a
    load on the database the service shares."""
    while await db.fetchval(f"SELECT EXISTS (SELECT FROM {schema}.outbox)"):  # noqa: S608, ASYNC110
        await asyncio.sleep(poll_s)  # (a table another task empties: nothing to wait on)


async def produce_all(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> float:
    """Produce records as fast as the broker takes them; returns seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5,
        max_batch_size=512 * 1024, acks=1,
    )  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_passthrough(
    bootstrap: str, database_url: str, records: Sequence[tuple[bytes | None, bytes]],
    batch: int = 2_000,
) -> Throughput:  # fmt: skip
    """The physical reference: consume a batch, decode, one batched upsert, produce, commit.

    Same broker, same database, same records as the service under test; no business logic.
    """
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench.baseline-in-{run}", f"bench.baseline-out-{run}"
    await ensure_topics(bootstrap, [TopicSpec(source, "baseline in"), TopicSpec(sink, "out")])
    await produce_all(bootstrap, source, records)
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    await db.execute(
        "CREATE TABLE IF NOT EXISTS public.bench_baseline "
        "(id text PRIMARY KEY, payload jsonb NOT NULL, seen int NOT NULL DEFAULT 1)"
    )
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=f"baseline-{run}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=2, acks="all"
    )
    await consumer.start()
    await producer.start()

    async def upsert_and_forward(messages: Batch) -> None:
        decoded = [orjson.loads(m.value) for m in messages]
        ids = [str(d.get("messageId", uuid.uuid4().hex)) for d in decoded]
        await db.execute(
            "INSERT INTO public.bench_baseline (id, payload) "
            "SELECT * FROM unnest($1::text[], $2::jsonb[]) "
            "ON CONFLICT (id) DO UPDATE SET seen = bench_baseline.seen + 1",
            ids,
            [m.value.decode() for m in messages],
        )
        sent = [await producer.send(sink, value=m.value, key=m.key) for m in messages]
        await asyncio.gather(*sent)

    try:
        return await timed_batches(consumer, len(records), batch, upsert_and_forward)
    finally:
        await consumer.stop()
        await producer.stop()
        await db.execute("DROP TABLE IF EXISTS public.bench_baseline")
        await db.close()


async def timed_batches(
    consumer: AIOKafkaConsumer, total: int, batch: int,
    work: Callable[[Batch], Awaitable[None]],
) -> Throughput:  # fmt: skip
    """Consume `total` records in batches of up to `batch`: `work` on each, then commit its
    offsets. Timed from the first batch's arrival; CPU is this process's over the same span."""
    done, started, timings, cpu = 0, 0.0, [], 0.0
    while done < total:
        batches = await consumer.getmany(timeout_ms=500, max_records=batch)
        if not batches:
            continue
        t0 = time.perf_counter()
        if not started:
            started, cpu = t0, time.process_time()
        messages = [m for msgs in batches.values() for m in msgs]
        await work(messages)
        await consumer.commit()
        done += len(messages)
        timings.append((time.perf_counter() - t0) * 1000)
    return Throughput(done, time.perf_counter() - started, timings, time.process_time() - cpu)


def report(
    console: Console, title: str, rows: Sequence[tuple[str, Any]], figures: dict[str, Any],
    json_path: Path | None,
) -> None:  # fmt: skip
    """Print the table; write the figures as one JSON object when asked."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, f"{value:,.1f}" if isinstance(value, float) else str(value))
    console.print(table)
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {json_path}")


@dataclass(frozen=True)
class FixedRateLoad:
    """Records to `source` at `rate` a second, one per (profile id, kind) of `events`, made at
    send time by `build(profile_id, kind)` (fresh timestamps); an event whose kind is in
    `answered` waits for its answer: a `sink` record for that profile id whose field
    `answer[0]` is `answer[1]`. The others are load. `build` must pickle (a module-level
    function, or a `functools.partial` of one): the load runs in another process."""

    bootstrap: str
    source: str
    sink: str
    rate: float
    events: Sequence[tuple[str, str]]
    build: Callable[[str, str], bytes]
    answered: frozenset[str]
    answer: tuple[str, str]


async def fixed_rate_latency(load: FixedRateLoad, timeout_s: float = 180.0) -> list[float]:
    """ms from producing each record of `load` to reading its answer.

    The load runs in child processes, as a shop's backend and the services downstream do: in
    the process under test it took a third as much CPU as the handler it measured, and its
    sends and reads queued behind the handler's work on one event loop, counted as latency.
    The reader has a process of its own too: in the sender's, a send loop catching up after a
    pause held the event loop and the answers that had arrived waited for it (single reads
    late by up to 200 ms while the service had published them in under 80). Both stamp
    `time.perf_counter()`, one clock (CLOCK_MONOTONIC) for every process of the machine."""
    context = multiprocessing.get_context("spawn")
    reader_end, reader_child_end = context.Pipe()
    reader = context.Process(
        target=_reader_child, args=(reader_child_end, load, timeout_s), name="bench-read"
    )
    # in a thread: starting a spawned child holds its caller for ~0.5 s (measured 0.49 to 0.64 s
    # here), which on this loop would stall the service under test just before the phase
    await asyncio.to_thread(reader.start)
    reader_child_end.close()
    sender: Any = None
    try:
        ready = await asyncio.to_thread(_receive, reader_end, 60.0)
        if ready != "ready":
            raise RuntimeError(f"latency reader failed: {ready}")
        receiving, sending = context.Pipe(duplex=False)
        sender = context.Process(target=_sender_child, args=(sending, load), name="bench-load")
        await asyncio.to_thread(sender.start)
        sending.close()
        sent = await asyncio.to_thread(_receive, receiving, timeout_s)
        if isinstance(sent, str):
            raise RuntimeError(f"latency load failed: {sent}")
        arrived = await asyncio.to_thread(_receive, reader_end, timeout_s)
        if isinstance(arrived, str):
            raise RuntimeError(f"latency reader failed: {arrived}")
    finally:
        for child in (sender, reader):
            if child is not None:
                await asyncio.to_thread(child.join, 10)
                if child.is_alive():
                    child.kill()
    return [(arrived[pid] - at) * 1000 for pid, at in sent.items() if pid in arrived]


def _receive(receiving: Connection, timeout_s: float) -> Any:
    if not receiving.poll(timeout_s):
        return f"no answer in {timeout_s:.0f} s"
    try:
        return receiving.recv()
    except EOFError:
        return "the child process ended without an answer"


def _sender_child(sending: Connection, load: FixedRateLoad) -> None:
    try:
        result: dict[str, float] | str = asyncio.run(_send_at_rate(load))
    except Exception as exc:  # reported to the parent, which raises it
        result = f"{type(exc).__name__}: {exc}"
    sending.send(result)
    sending.close()


def _reader_child(pipe: Connection, load: FixedRateLoad, timeout_s: float) -> None:
    try:
        result: dict[str, float] | str = asyncio.run(_read_answers(pipe, load, timeout_s))
    except Exception as exc:  # reported to the parent, which raises it
        result = f"{type(exc).__name__}: {exc}"
    pipe.send(result)
    pipe.close()


async def _send_at_rate(load: FixedRateLoad) -> dict[str, float]:
    """Sends every event at the load's rate; when each awaited one left (perf_counter)."""
    sent_at: dict[str, float] = {}
    # A stock client's batching, as a shop's backend has it: librdkafka (since 1.5) and the
    # Java client (since Kafka 4.0) wait up to 5 ms by default. The wait is in the figures
    # (each record is stamped before it is handed over). With no wait, every record was a
    # batch of its own, and the embedded broker lists all of a partition's batches on each
    # fetch that finds records: with 0 ms it took 388-422 µs of CPU an event in a latency
    # round, with 5 ms 288-330 (stop 28, docs/performance.md).
    producer = AIOKafkaProducer(
        bootstrap_servers=load.bootstrap, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        await producer.partitions_for(load.source)  # metadata before the clock starts
        started = time.perf_counter()
        for i, (pid, kind) in enumerate(load.events):
            if (delay := started + i / load.rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            body = load.build(pid, kind)
            if kind in load.answered:
                sent_at[pid] = time.perf_counter()
            await producer.send(load.source, value=body, key=pid.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return sent_at


async def _read_answers(
    pipe: Connection, load: FixedRateLoad, timeout_s: float
) -> dict[str, float]:
    """From the sink's end (positions resolved before saying ready): when each awaited
    answer was read (perf_counter), by profile id."""
    field_name, wanted = load.answer
    awaited_ids = {pid for pid, kind in load.events if kind in load.answered}
    reader = AIOKafkaConsumer(bootstrap_servers=load.bootstrap, group_id=None,
                              fetch_max_wait_ms=5, auto_offset_reset="latest")  # fmt: skip
    await reader.start()
    arrived: dict[str, float] = {}
    try:
        await reader.topics()  # metadata, so the sink's partitions are known
        partitions = reader.partitions_for_topic(load.sink) or set()
        reader.assign([TopicPartition(load.sink, p) for p in sorted(partitions)])
        await reader.seek_to_end()
        for tp in reader.assignment():
            await reader.position(tp)
        pipe.send("ready")
        deadline = time.perf_counter() + timeout_s
        while len(arrived) < len(awaited_ids) and time.perf_counter() < deadline:
            batches = await reader.getmany(timeout_ms=200)
            now = time.perf_counter()
            for msgs in batches.values():
                for msg in msgs:
                    body = orjson.loads(msg.value or b"{}")
                    pid = body.get("profile_id", "")
                    if pid in awaited_ids and body.get(field_name) == wanted:
                        arrived.setdefault(pid, now)  # not an earlier run's answer, not twice
    finally:
        await reader.stop()
    return arrived
