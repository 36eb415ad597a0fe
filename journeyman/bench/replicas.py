"""More replicas of a service beside the one a benchmark runs in-process: each a separate
`journeyman serve` process with the same settings (so the same consumer groups), as an operator
scales a service out. A replica is the only way a Python service uses a second core: one
process's event loop runs on one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil
from pydantic_settings import BaseSettings

from journeyman.embedded import free_port
from shared.consumer import BatchConsumer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REPLICAS = 2  # processes of the service under test: one per core of this machine


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The settings given explicitly, as the `JOURNEYMAN_` variables that give them again."""
    return {
        f"JOURNEYMAN_{name.upper()}": value
        if isinstance(value, str)
        else orjson.dumps(value).decode()
        for name, value in settings.model_dump(exclude_unset=True, mode="json").items()
    }


@dataclass
class Replicas:
    pids: list[int]

    def cpu_s(self) -> float:
        """CPU seconds (user and system) the replicas used since they started."""
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total


@contextlib.asynccontextmanager
async def service_replicas(
    service: str, count: int, settings: BaseSettings, log_dir: Path, timeout_s: float = 90
) -> AsyncIterator[Replicas]:
    """`count` more processes of `service`, ready (`/readyz` answered 200) when yielded,
    stopped (SIGTERM: a clean shutdown) afterwards. Their logs go to `log_dir`."""
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    started: list[tuple[asyncio.subprocess.Process, int, Path]] = []
    try:
        for i in range(count):
            port, log = free_port(), log_dir / f"{service}-replica-{i + 2}.log"
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "journeyman.cli", "serve", service,
                    "--port", str(port),
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            started.append((proc, port, log))
        for proc, port, log in started:
            await _wait_ready(proc, port, log, time.monotonic() + timeout_s)
        yield Replicas([proc.pid for proc, _, _ in started])
    finally:
        for proc, _, _ in started:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc, _, _ in started:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_ready(
    proc: asyncio.subprocess.Process, port: int, log: Path, deadline: float
) -> None:
    """Without blocking the loop: the benchmark's own replica runs on it meanwhile."""
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if proc.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]
                raise RuntimeError(f"a replica exited with code {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"a replica was not ready in time; see {log}")
            await asyncio.sleep(0.2)


async def partitions_shared(consumer: BatchConsumer, replicas: int, timeout_s: float = 60) -> None:
    """Wait until the group's rebalance gave the other replicas their share of the
    consumer's partitions, so that no measured phase runs through a rebalance."""
    deadline = time.monotonic() + timeout_s
    while not 0 < len(consumer.assignment()) <= -(-consumer.partition_count() // replicas):
        if time.monotonic() > deadline:
            raise TimeoutError("the replicas did not join the consumer group in time")
        await asyncio.sleep(0.1)
