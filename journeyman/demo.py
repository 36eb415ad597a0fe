"""`journeyman demo`: the whole system end to end on this machine, in about a minute.

Starts the stack with the thank-you journey and the seven example journeys (their waits
compressed: `JOURNEYMAN_JOURNEY_TIME_SCALE`, a day lasts under two seconds), sends a synthetic
shop's traffic through the Segment-compatible API, answers the satisfaction surveys the
customers receive, waits until every expected thank-you email is in the local inbox (and every
customer without consent was refused one), prints what each journey did and stops everything.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyman.shop import Customer, customers, survey_answers, traffic
from journeyman.stack import Stack, StackInfo

BATCH = 100
THANK_YOU = "post-purchase-thank-you"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "journeys"
TIME_SCALE = 0.00002  # one day of a journey lasts 1.7 s in the demo
JOURNEY_GRACE_S = 25.0  # how long the demo lets the example journeys run after the traffic


@dataclass
class DemoResult:
    customers: int
    events: int
    expected_sent: int
    expected_refused: int
    sent: int = 0
    refused: int = 0
    files: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0
    journeys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every expected message sent exactly once, none without consent."""
        return (
            self.sent == self.expected_sent
            and self.refused == self.expected_refused
            and len(self.files) == self.expected_sent
        )


def run_demo(home: Path, count: int, seed: int, console: Console, timeout_s: float = 90) -> int:
    """Returns the exit code: 0 when every expected message arrived and none went unconsented."""
    rng = random.Random(seed)
    shoppers = customers(count, rng)
    messages = list(traffic(shoppers, rng, run=f"demo-{uuid.uuid4().hex[:8]}"))
    result = DemoResult(
        customers=count,
        events=len(messages),
        expected_sent=sum(1 for c in shoppers if c.buys and c.marketing_email),
        expected_refused=sum(1 for c in shoppers if c.buys and not c.marketing_email),
    )
    env = {**os.environ, "JOURNEYMAN_JOURNEY_EXTRA_DIRS": json.dumps([str(EXAMPLES)]),
           "JOURNEYMAN_JOURNEY_TIME_SCALE": str(TIME_SCALE)}  # fmt: skip
    stack = Stack(
        home, env=env, echo_logs=False, say=lambda m: console.print(f"[cyan]journeyman[/] {m}")
    )
    started = time.monotonic()
    try:
        info = stack.start()
        _drive(info, messages, result, console, timeout_s, shoppers)
        result.journeys = _journeys(info, shoppers, rng, console)
    finally:
        stack.stop()
    result.elapsed_s = time.monotonic() - started
    _summary(console, result, info.outbox_dir)
    console.print(
        f"console: {info.services['profile']}/console (the demo's data stays in {home}: run "
        f"`journeyman up` to browse it; log in with the ops API key {info.api_key})"
    )
    return 0 if result.ok else 1


def _drive(  # noqa: PLR0917
    info: StackInfo,
    messages: list[dict[str, Any]],
    result: DemoResult,
    console: Console,
    timeout_s: float,
    shoppers: list[Customer],
) -> None:
    """Send the traffic, then watch the channels service until every expected thank-you is
    decided (sent, or refused for want of consent)."""
    inbox = Path(info.outbox_dir)
    before_files = set(inbox.glob("*.eml"))
    profile_url = info.services["profile"]
    ops = {"Authorization": f"Bearer {info.api_key}"}
    buyers = [c.user_id for c in shoppers if c.buys]
    with httpx.Client(timeout=30) as client, _progress(console) as progress:
        task = progress.add_task("events sent", total=len(messages))
        for i in range(0, len(messages), BATCH):
            chunk = messages[i : i + BATCH]
            client.post(
                f"{profile_url}/v1/batch", json={"batch": chunk}, auth=(info.write_key, "")
            ).raise_for_status()
            progress.advance(task, len(chunk))
        done = progress.add_task(
            "messages decided", total=result.expected_sent + result.expected_refused
        )
        deadline = time.monotonic() + timeout_s
        decided: dict[str, str] = {}
        while time.monotonic() < deadline:
            for user in buyers:
                if user not in decided:
                    status = _thank_you_status(client, info, ops, user)
                    if status in ("sent", "suppressed"):
                        decided[user] = status
            result.sent = sum(1 for s in decided.values() if s == "sent")
            result.refused = sum(1 for s in decided.values() if s == "suppressed")
            progress.update(done, completed=result.sent + result.refused)
            if result.sent >= result.expected_sent and result.refused >= result.expected_refused:
                break
            time.sleep(0.25)
    time.sleep(0.5)  # the SMTP inbox writes each file right after it accepts the message
    result.files = sorted(
        p for p in set(inbox.glob("*.eml")) - before_files
        if "Thank you for your order" in p.read_text(errors="replace")
    )  # fmt: skip


def _thank_you_status(
    client: httpx.Client, info: StackInfo, ops: dict[str, str], user: str
) -> str | None:
    """What the channels service decided about this customer's thank-you email, if anything."""
    found = client.get(f"{info.services['profile']}/v1/profiles/user:{user}", headers=ops)
    if found.status_code != 200:
        return None
    pid = found.json()["profile_id"]
    sends = client.get(f"{info.services['channels']}/v1/profiles/{pid}/sends", headers=ops).json()
    statuses = [s["status"] for s in sends if s.get("journey_id") == THANK_YOU]
    return statuses[0] if statuses else None


def _journeys(
    info: StackInfo, shoppers: list[Customer], rng: random.Random, console: Console
) -> list[dict[str, Any]]:
    """Let the example journeys run: answer the NPS surveys once they are out, then read each
    journey's funnel."""
    journey_url, profile_url = info.services["journey"], info.services["profile"]
    ops = {"Authorization": f"Bearer {info.api_key}"}
    delivered = sum(1 for c in shoppers if c.buys)
    deadline = time.monotonic() + JOURNEY_GRACE_S
    with httpx.Client(timeout=30) as client:
        console.print("[cyan]journeyman[/] letting the example journeys run (compressed time)")
        while time.monotonic() < deadline:
            survey = _stats(client, journey_url, ops, "post-delivery-survey")
            if survey and _step(survey, "answer").get("waiting", 0) >= delivered:
                break
            time.sleep(0.5)
        answers = list(survey_answers(shoppers, rng, run=f"demo-{uuid.uuid4().hex[:8]}"))
        client.post(f"{profile_url}/v1/batch", json={"batch": answers},
                    auth=(info.write_key, "")).raise_for_status()  # fmt: skip
        time.sleep(max(0.0, min(8.0, deadline - time.monotonic())))
        listed = client.get(f"{journey_url}/v1/journeys", headers=ops).json()["journeys"]
        return [s for j in listed if (s := _stats(client, journey_url, ops, j["id"]))]


def _stats(
    client: httpx.Client, url: str, ops: dict[str, str], journey_id: str
) -> dict[str, Any] | None:
    response = client.get(f"{url}/v1/journeys/{journey_id}/stats", headers=ops)
    return response.json() if response.status_code == 200 else None


def _step(stats: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next((s for s in stats["steps"] if s["step_id"] == step_id), {})


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _summary(console: Console, result: DemoResult, outbox: str) -> None:
    table = Table(title="Journeyman demo")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("customers", str(result.customers))
    table.add_row("events sent to /v1/batch", str(result.events))
    table.add_row("thank-you emails sent", f"{result.sent} (expected {result.expected_sent})")
    table.add_row("refused: no marketing consent", str(result.refused))
    table.add_row("new .eml files in the inbox", str(len(result.files)))
    table.add_row("elapsed", f"{result.elapsed_s:.1f}s")
    console.print(table)
    _journey_table(console, result.journeys)
    console.print(f"inbox: {outbox}")
    if result.files:
        sample = BytesParser(policy=policy.default).parsebytes(result.files[-1].read_bytes())
        console.print(f"latest: {result.files[-1].name}")
        console.print(f"  To: {sample['To']}\n  Subject: {sample['Subject']}")
    if result.ok:
        console.print("[bold green]every expected message delivered once, none without consent[/]")
    else:
        console.print("[bold red]messages missing or unexpected; see .journeyman/logs/[/]")


def _journey_table(console: Console, journeys: list[dict[str, Any]]) -> None:
    """Each journey's funnel since this database was created (counters accumulate per run)."""
    table = Table(title="Journeys (all runs on this database)")
    for column in ("journey", "entered", "holdout", "messages", "converted", "active"):
        table.add_column(column, justify="left" if column == "journey" else "right", no_wrap=True)
    paths = []
    for stats in sorted(journeys, key=lambda s: s["journey_id"]):
        groups = stats["groups"]
        sends = sum(s["entered"] for s in stats["steps"] if s["type"] == "send")
        branches = "; ".join(
            f"{s['step_id']}: " + ", ".join(f"{k} {v}" for k, v in sorted(s["branches"].items()))
            for s in stats["steps"] if s["branches"]
        )  # fmt: skip
        table.add_row(
            stats["journey_id"], str(groups["treatment"]["entered"] + groups["holdout"]["entered"]),
            str(groups["holdout"]["entered"]), str(sends), str(stats["goal"]["conversions"]),
            str(stats["instances"]["active"]),
        )  # fmt: skip
        if branches:
            paths.append(f"  {stats['journey_id']}: {branches}")
    console.print(table)
    for line in paths:
        console.print(line, highlight=False, markup=False)
