"""`journeyman bench channels`: dispatch requests at full speed into the local SMTP and HTTP
provider servers, against the raw pass-through baseline measured in the same run.

On a fresh embedded stack (PostgreSQL and Tansu in a temporary directory, migrated), with the
SMTP server (count-only) and the SMS / push provider server each in a process of its own:

1. the raw baseline (`journeyman.bench.common.raw_passthrough`) over the email dispatches;
2. the policy's cost per message: the pure decision (`policy.decide_batch`, in memory) and the
   whole decision step as the service runs it (lock consent, read opt-outs, suppressions and
   the sends the caps count, decide, claim the attempts with their decisions: one transaction
   per 2,000-dispatch batch);
3. per channel (email, SMS, push), one after the other: N dispatches produced to
   `jm.dispatch`, each carrying its customer's snapshot as the journey engine's do, into the
   channels pipeline (consumer, policy, render, provider, record, outbox) running as
   `replicas` processes of the service, 2 by default: this one and `journeyman serve
   channels` beside it, one consumer group, started once for the three runs; messages/s from
   the first attempt claimed to the last one recorded, from the attempt log's own
   timestamps. Caps are on for every channel (2 messages per customer per channel, under a
   cap of 3 a week), so caps and consent are checked for every message;
4. per channel, the provider exchange alone, the channel's physical ceiling here: the same
   provider objects the service builds (connection pool, rate limiter, retries) send one
   message composed by the service's own code, again and again with fresh dispatch ids, as
   many at once as the service would, to the same servers; no broker, database, policy,
   rendering or recording: the service does all of that besides, on the same two cores.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console

from journeyman.bench.common import asyncpg_dsn, produce_all, raw_passthrough, report
from journeyman.bench.replicas import DEFAULT_REPLICAS, partitions_shared, service_replicas
from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from services.channels import deciding, repository
from services.channels.app import DISPATCH_GROUP, create_app, link_maker, providers_for
from services.channels.deciding import Claimed
from services.channels.delivery import Delivery, Tracking
from services.channels.policy import Candidate, Facts, address_of, decide_batch
from services.channels.settings import ChannelsSettings
from services.channels.templates import Templates
from shared.codec import dumps, json_text
from shared.contracts import DispatchRequest, ProfileSnapshot
from shared.db import create_engine
from shared.kafka import ensure_topics
from shared.migrations import upgrade
from shared.topics import DISPATCH

SIZES = {"small": (4_000, 8_000), "default": (20_000, 40_000), "large": (100_000, 200_000)}
"""emails, and SMS and push each"""
CHANNELS = ("email", "sms", "push")
ROOT = Path(__file__).resolve().parents[2]
CAPS = [{"channel": ch, "message_type": "marketing", "limit": 3, "window": "7d"}
        for ch in CHANNELS]  # fmt: skip


def _contact(i: int) -> dict[str, Any]:
    """Customer `b{i}` as the profile service publishes it: traits, consent to marketing on
    every channel, and behaviour of the size a shop's snapshot has (~1 KB in all)."""
    at = "2026-01-01T00:00:00+00:00"
    consent = {ch: {"marketing": {"granted": True, "source": "bench", "at": at}}
               for ch in ("email", "sms", "push")}  # fmt: skip
    behaviour = {
        "visits": 12, "last_seen": at, "product_views": 40, "orders": 3, "revenue": 259.7,
        "average_basket": 86.57, "first_order_at": at, "last_order_at": at,
        "open_cart": {"cart_id": f"cart-{i}", "value": 19.9, "updated_at": at,
                      "items": [{"sku": "sku-1", "quantity": 1, "price": 19.9}]},
        "last_opened": {"email": at},
    }  # fmt: skip
    return {
        "profile_id": f"b{i}", "version": 1, "user_id": f"bench-{i}",
        "traits": {"first_name": f"C{i}", "email": f"c{i}@bench.example",
                   "phone": f"+3361{i:07d}", "push_tokens": [f"tok-{i}"],
                   "timezone": "Europe/Paris", "language": "fr" if i % 3 == 0 else "en"},
        "behaviour": behaviour, "consent": consent, "updated_at": at,
    }  # fmt: skip


def _contacts(customers: int) -> list[dict[str, Any]]:
    return [_contact(i) for i in range(customers)]


def _requests(channel: str, count: int, run: str) -> list[DispatchRequest]:
    """Two per customer, so every cap is read and counted but none is reached. Each carries
    its customer's snapshot, as the journey engine's dispatches do (the same version as the
    stored one: the channels' projection is usually up to date)."""
    template = "order-thank-you" if channel == "email" else "cart-reminder"
    now = datetime.now(UTC)
    profiles = {i: ProfileSnapshot.model_validate(_contact(i)) for i in range((count + 1) // 2)}
    return [
        DispatchRequest(
            dispatch_id=f"{run}-{channel}-{i}", profile_id=f"b{i // 2}", channel=channel,
            message_type="marketing", template=template, journey_id=f"bench-{i % 3}",
            journey_version=1, step_id="s1", priority=i % 3,
            data={"event": {"properties": {"order_id": f"o-{i}", "revenue": 20}},
                  "journey": {"id": f"bench-{i % 3}", "name": "Bench"}},
            profile=profiles[i // 2], requested_at=now,
        )
        for i in range(count)
    ]  # fmt: skip


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "journeyman.cli", *argv], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _wait_port(port: int) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


async def _policy_cost(settings: ChannelsSettings, customers: int) -> dict[str, float]:
    """Microseconds per message: the pure decision, and the whole decision transaction."""
    config = settings.policy()
    contacts = {c["profile_id"]: c for c in _contacts(customers)}
    requests = _requests("email", min(customers * 2, 20_000), "policy")
    candidates = [
        Candidate(r.dispatch_id, r.profile_id, r.channel, r.message_type, r.priority,
                  r.requested_at) for r in requests
    ]  # fmt: skip
    t0 = time.perf_counter()
    decide_batch(candidates, Facts(profiles=contacts), config, datetime.now(UTC))
    pure = (time.perf_counter() - t0) / len(candidates) * 1e6
    engine = create_engine(settings)
    try:
        t0 = time.perf_counter()
        for start in range(0, len(requests), 2_000):
            async with engine.begin() as conn:
                await deciding.claim(conn, requests[start : start + 2_000], config,
                                     datetime.now(UTC))  # fmt: skip
        whole = (time.perf_counter() - t0) / len(requests) * 1e6
        async with engine.begin() as conn:  # leave no trace for the channel runs' caps
            await conn.exec_driver_sql(
                "DELETE FROM channels.send_attempts WHERE dispatch_id LIKE 'policy-%'"
            )
            await conn.exec_driver_sql(
                "DELETE FROM channels.decisions WHERE dispatch_id LIKE 'policy-%'"
            )
    finally:
        await engine.dispose()
    return {"policy_pure_us_per_message": round(pure, 2),
            "policy_decision_step_us_per_message": round(whole, 1)}  # fmt: skip


async def _channel_run(
    settings: ChannelsSettings, db: asyncpg.Connection, channel: str, count: int, run: str
) -> dict[str, Any]:
    """Produce `count` dispatches of `channel` to the running service and wait until every
    one is decided and sent (or failed); messages sent a second, from the first claim to the
    last record."""
    records = [(r.profile_id.encode(), dumps(r.model_dump(mode="json")))
               for r in _requests(channel, count, run)]  # fmt: skip
    await produce_all(settings.kafka_bootstrap_servers, DISPATCH, records)
    deadline = time.monotonic() + 600
    like = f"{run}-{channel}-%"
    while time.monotonic() < deadline:
        done = await db.fetchval(
            "SELECT count(*) FROM channels.send_attempts WHERE dispatch_id LIKE $1 "
            "AND status NOT IN ('sending')", like,
        )  # fmt: skip
        if done >= count:
            break
        await asyncio.sleep(0.2)
    row = await db.fetchrow(
        "SELECT min(claimed_at) AS first, max(finished_at) AS last FROM channels.send_attempts "
        "WHERE dispatch_id LIKE $1", like,
    )  # fmt: skip
    statuses = {r["status"]: r["n"] for r in await db.fetch(
        "SELECT status, count(*) AS n FROM channels.send_attempts WHERE dispatch_id LIKE $1 "
        "GROUP BY 1", like)}  # fmt: skip
    seconds = (row["last"] - row["first"]).total_seconds() if row["first"] else 0.0
    sent = int(statuses.get("sent", 0))
    return {
        f"{channel}_dispatches": count,
        f"{channel}_sent": sent,
        f"{channel}_statuses": statuses,
        f"{channel}_messages_per_s": round(sent / seconds, 1) if seconds else 0,
    }


async def _provider_ceiling(settings: ChannelsSettings, channel: str, count: int) -> float:
    """Messages/s of the provider exchange alone (point 4 of the module docstring)."""
    request = _requests(channel, 1, "ceiling")[0]
    contact = _contacts(1)[0]
    address = address_of(contact, channel)
    assert address is not None, f"bench contact has no {channel} address"
    delivery = Delivery(
        Templates(Path(settings.templates_dir)), {}, link_maker(settings), Tracking(),
        settings.send_concurrency,
    )  # fmt: skip
    message = delivery.compose(Claimed(request, contact, address))
    provider = providers_for(settings)[channel]
    await provider.provider.start()
    ids = iter(range(count))

    async def sender() -> None:
        for i in ids:
            await provider.send(replace(message, dispatch_id=f"ceiling-{channel}-{i}"))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(settings.send_concurrency)))
        return count / (time.perf_counter() - started)
    finally:
        await provider.provider.close()


async def _per_channel(  # noqa: PLR0917
    settings: ChannelsSettings,
    counts: dict[str, int],
    provider_url: str,
    console: Console,
    replicas: int,
    work: Path,
) -> dict[str, Any]:
    """Points 3 and 4 of the module docstring, for each channel."""
    figures: dict[str, Any] = {"replicas": replicas}
    app = create_app(settings)
    db = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        # The service and its replicas start once for the three runs: restarting them for
        # each run left a new replica unready past the 90 s limit in about half the runs
        # (stop 28, docs/performance.md).
        async with app.router.lifespan_context(app):
            dispatch = next(c for c in app.state.runtime.consumers if c.group == DISPATCH_GROUP)
            async with service_replicas("channels", replicas - 1, settings, work):
                await partitions_shared(dispatch, replicas)
                for channel, count in counts.items():
                    console.print(f"{channel}: {count:,} dispatches …")
                    figures |= await _channel_run(settings, db, channel, count, "run")
    finally:
        await db.close()
    async with httpx.AsyncClient() as client:  # before the ceilings add theirs
        figures["provider_server_received"] = (await client.get(f"{provider_url}/_counts")).json()
    for channel, count in counts.items():
        console.print(f"{channel}: the provider exchange alone, {count:,} messages …")
        rate = await _provider_ceiling(settings, channel, count)
        figures[f"{channel}_provider_ceiling_per_s"] = round(rate, 1)
        figures[f"{channel}_provider_ceiling_messages"] = count
    return figures


async def measure(size: str, console: Console, replicas: int) -> dict[str, Any]:
    emails, others = SIZES[size]
    customers = max(emails, others) // 2
    figures: dict[str, Any] = {"benchmark": "channels", "size": size}
    with tempfile.TemporaryDirectory(prefix="jm-bench-channels-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres")
        broker = EmbeddedKafka(log_file=Path(tmp) / "broker.log")
        smtp_port, http_port = free_port(), free_port()
        smtp = _spawn(["inbox", str(Path(tmp) / "inbox"), "--port", str(smtp_port), "--no-keep"])
        http = _spawn(["providers", "--port", str(http_port), "--no-callbacks", "--no-keep"])
        url = await asyncio.to_thread(pg.start)
        try:
            bootstrap = await asyncio.to_thread(broker.start)
            await ensure_topics(bootstrap)
            await asyncio.to_thread(upgrade, url)
            await asyncio.to_thread(_wait_port, smtp_port)
            await asyncio.to_thread(_wait_port, http_port)
            provider_url = f"http://127.0.0.1:{http_port}"
            settings = ChannelsSettings(
                database_url=url, kafka_bootstrap_servers=bootstrap,
                service_name="bench-channels", templates_dir=str(ROOT / "templates"),
                smtp_host="127.0.0.1", smtp_port=smtp_port, twilio_base_url=provider_url,
                fcm_base_url=provider_url, caps=CAPS, unknown_after_s=600,
                kafka_session_timeout_ms=3_000,
            )  # fmt: skip
            engine = create_engine(settings)
            async with engine.begin() as conn:
                rows = [(c["profile_id"], c["version"], json_text(c)) for c in _contacts(customers)]
                await repository.upsert_contacts(conn, rows)
            await engine.dispose()
            console.print(f"{customers:,} customers with consent; baseline: raw pass-through …")
            baseline_records = [
                (r.profile_id.encode(), dumps(r.model_dump(mode="json")))
                for r in _requests("email", emails, "baseline")
            ]
            baseline = await raw_passthrough(bootstrap, url, baseline_records)
            figures |= baseline.figures("baseline")
            console.print("policy decision cost …")
            figures |= await _policy_cost(settings, customers)
            counts = {"email": emails, "sms": others, "push": others}
            figures |= await _per_channel(
                settings, counts, provider_url, console, replicas, Path(tmp)
            )
        finally:
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(pg.stop)
            http.terminate()
            smtp.terminate()
            out, _ = smtp.communicate(timeout=10)
            http.wait(10)
            text = out.decode()
            ceiling = figures.get("email_provider_ceiling_messages", 0)
            figures["smtp_server_received"] = (  # what the channel runs sent, not the ceiling
                int(text.split()[-1]) - ceiling if text.startswith("accepted") else None
            )
    return figures


def run(
    size: str, json_path: Path | None, console: Console, replicas: int = DEFAULT_REPLICAS
) -> None:
    if size not in SIZES:
        raise ValueError(f"size: one of {', '.join(SIZES)}")
    if replicas < 1:
        raise ValueError("replicas is at least 1")
    f = asyncio.run(measure(size, console, replicas))
    rows = [
        ("raw baseline events/s (one process)", float(f["baseline_events_per_s"])),
        ("channels service processes", str(f["replicas"])),
        ("email messages/s (SMTP)", float(f["email_messages_per_s"])),
        ("sms messages/s (Twilio API)", float(f["sms_messages_per_s"])),
        ("push messages/s (FCM v1 API)", float(f["push_messages_per_s"])),
        ("ceiling: provider exchange alone, email / sms / push messages/s",
         " / ".join(f"{f[f'{ch}_provider_ceiling_per_s']:,.0f}" for ch in CHANNELS)),
        ("email / sms / push, share of their ceiling",
         " / ".join(f"{f[f'{ch}_messages_per_s'] / f[f'{ch}_provider_ceiling_per_s']:.0%}"
                    for ch in CHANNELS)),
        ("policy decision µs/message, pure", float(f["policy_pure_us_per_message"])),
        ("policy decision µs/message, with its SQL",
         float(f["policy_decision_step_us_per_message"])),
        ("sent email / sms / push",
         f"{f['email_sent']:,} / {f['sms_sent']:,} / {f['push_sent']:,}"),
        ("received by SMTP server", str(f["smtp_server_received"])),
        ("received by HTTP server (sms / push)",
         f"{f['provider_server_received']['sms']:,} / {f['provider_server_received']['push']:,}"),
        ("email / baseline", f"{f['email_messages_per_s'] / f['baseline_events_per_s']:.1%}"),
    ]  # fmt: skip
    report(console, f"channels ({size})", rows, f, json_path)
