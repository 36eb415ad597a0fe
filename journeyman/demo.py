"""`journeyman demo`: the whole system end to end on this machine, in about a minute.

Starts the stack, sends a synthetic shop's traffic through the Segment-compatible API, waits
until every expected thank-you email is in the local inbox (and every customer without consent
was refused one), prints a summary and stops everything.
"""

from __future__ import annotations

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

from journeyman.shop import customers, traffic
from journeyman.stack import Stack, StackInfo

BATCH = 100


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
    stack = Stack(home, echo_logs=False, say=lambda m: console.print(f"[cyan]journeyman[/] {m}"))
    started = time.monotonic()
    try:
        info = stack.start()
        _drive(info, messages, result, console, timeout_s)
    finally:
        stack.stop()
    result.elapsed_s = time.monotonic() - started
    _summary(console, result, info.outbox_dir)
    return 0 if result.ok else 1


def _drive(
    info: StackInfo,
    messages: list[dict[str, Any]],
    result: DemoResult,
    console: Console,
    timeout_s: float,
) -> None:
    """Send the traffic, then watch the channels service until every expected send is decided."""
    inbox = Path(info.outbox_dir)
    before_files = set(inbox.glob("*.eml"))
    profile_url, channels_url = info.services["profile"], info.services["channels"]
    ops = {"Authorization": f"Bearer {info.api_key}"}
    with httpx.Client(timeout=30) as client, _progress(console) as progress:
        before = client.get(f"{channels_url}/v1/sends/stats", headers=ops).json()
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
        while time.monotonic() < deadline:
            now = client.get(f"{channels_url}/v1/sends/stats", headers=ops).json()
            result.sent = now.get("sent", 0) - before.get("sent", 0)
            result.refused = now.get("suppressed", 0) - before.get("suppressed", 0)
            progress.update(done, completed=result.sent + result.refused)
            if result.sent >= result.expected_sent and result.refused >= result.expected_refused:
                break
            time.sleep(0.25)
    time.sleep(0.5)  # the SMTP inbox writes each file right after it accepts the message
    result.files = sorted(set(inbox.glob("*.eml")) - before_files)


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
    console.print(f"inbox: {outbox}")
    if result.files:
        sample = BytesParser(policy=policy.default).parsebytes(result.files[-1].read_bytes())
        console.print(f"latest: {result.files[-1].name}")
        console.print(f"  To: {sample['To']}\n  Subject: {sample['Subject']}")
    if result.ok:
        console.print("[bold green]every expected message delivered once, none without consent[/]")
    else:
        console.print("[bold red]messages missing or unexpected; see .journeyman/logs/[/]")
