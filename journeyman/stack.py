"""The whole system on one machine: embedded PostgreSQL and broker unless DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS say otherwise, topics, migrations, a local SMTP inbox, and the four
services as separate uvicorn processes. Used by `journeyman up`, `journeyman demo` and the tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil

from journeyman.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from shared.kafka import ensure_topics
from shared.migrations import upgrade
from shared.settings import new_key

SERVICES = ("profile", "segmenter", "journey", "channels")
DEFAULT_PORTS = {"profile": 8001, "segmenter": 8002, "journey": 8003, "channels": 8004}
Say = Callable[[str], None]


@dataclass
class StackInfo:
    """What runs where; written to `<home>/state.json` for `journeyman status`."""

    home: str
    database_url: str
    kafka_bootstrap_servers: str
    embedded_database: bool
    embedded_broker: bool
    smtp: str
    outbox_dir: str
    services: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    write_key: str = ""
    api_key: str = ""
    providers: str = ""  # the local SMS / push / webhook provider server, if we started it


def load_keys(home: Path, env: Mapping[str, str]) -> tuple[str, str]:
    """Write key and ops key: from the environment, else generated once and kept in `home`."""
    path = home / "keys.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    write_key = stored.get("write_key") or new_key("wk")
    api_key = stored.get("api_key") or new_key("ops")
    path.write_text(json.dumps({"write_key": write_key, "api_key": api_key}, indent=2))
    path.chmod(0o600)
    if env.get("JOURNEYMAN_WRITE_KEYS"):
        write_key = json.loads(env["JOURNEYMAN_WRITE_KEYS"])[0]
    if env.get("JOURNEYMAN_API_KEYS"):
        api_key = json.loads(env["JOURNEYMAN_API_KEYS"])[0]["key"]
    return write_key, api_key


def _pump(stream: IO[bytes], prefix: str, sinks: list[IO[str]]) -> None:
    """Copy a child's output line by line, each prefixed with the service name."""
    for raw in iter(stream.readline, b""):
        line = f"{prefix} {raw.decode('utf-8', 'replace').rstrip()}\n"
        for sink in sinks:
            sink.write(line)
            sink.flush()


class Stack:
    def __init__(
        self,
        home: Path,
        *,
        env: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
        echo_logs: bool = True,
        project_dir: Path | None = None,
        say: Say = lambda _: None,
    ) -> None:
        self.home = home.resolve()
        self.env = dict(os.environ if env is None else env)
        self.ports = dict(ports or DEFAULT_PORTS)
        self.echo_logs = echo_logs
        self.project_dir = (project_dir or Path.cwd()).resolve()
        self.say = say
        self._postgres: EmbeddedPostgres | None = None
        self._kafka: EmbeddedKafka | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._logs: list[IO[str]] = []
        self.info: StackInfo | None = None

    # -- start -------------------------------------------------------------------------------
    def start(self, timeout_s: float = 90) -> StackInfo:
        self.home.mkdir(parents=True, exist_ok=True)
        stop_leftovers(self.home)
        database_url = self.env.get("DATABASE_URL")
        if not database_url:
            self.say("starting embedded PostgreSQL")
            self._postgres = EmbeddedPostgres(self.home / "postgres")
            database_url = self._postgres.start()
        bootstrap = self.env.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            self.say("starting embedded Kafka-protocol broker (Tansu)")
            self._kafka = EmbeddedKafka(log_file=self.home / "logs" / "broker.log")
            bootstrap = self._kafka.start()
        self.say("creating topics")
        asyncio.run(ensure_topics(bootstrap))
        self.say("running migrations")
        upgrade(database_url)
        write_key, api_key = load_keys(self.home, self.env)
        outbox_dir = self.home / "outbox"
        smtp_host = self.env.get("JOURNEYMAN_SMTP_HOST")
        smtp_port = int(self.env.get("JOURNEYMAN_SMTP_PORT", "0"))
        if not smtp_host:
            smtp_host, smtp_port = "127.0.0.1", free_port()
            self.say("starting the local SMTP inbox")
            self._spawn(
                "inbox",
                [sys.executable, "-m", "journeyman.cli", "inbox", str(outbox_dir),
                 "--port", str(smtp_port)],
                {},
            )  # fmt: skip
        providers_url = ""
        if not self.env.get("JOURNEYMAN_TWILIO_BASE_URL"):
            providers_url = f"http://127.0.0.1:{free_port()}"
            self.say("starting the local SMS / push / webhook provider server")
            self._spawn(
                "providers",
                [sys.executable, "-m", "journeyman.cli", "providers",
                 "--port", providers_url.rsplit(":", 1)[1]],
                {},
            )  # fmt: skip
        service_env = {
            # Tansu answers a group join only after half the session timeout: keep it short on
            # the embedded broker so services start in a second, not five.
            **({"JOURNEYMAN_KAFKA_SESSION_TIMEOUT_MS": "3000"} if self._kafka else {}),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "JOURNEYMAN_WRITE_KEYS": json.dumps([write_key]),
            "JOURNEYMAN_API_KEYS": json.dumps([{"key": api_key, "scope": "write"}]),
            "JOURNEYMAN_SMTP_HOST": smtp_host,
            "JOURNEYMAN_SMTP_PORT": str(smtp_port),
            # one thank-you per order, however many orders: the example journey opts out of
            # frequency caps, as a marketer would set it in Braze
            "JOURNEYMAN_CAP_EXEMPT_JOURNEYS": self.env.get("JOURNEYMAN_CAP_EXEMPT_JOURNEYS")
            or '["post-purchase-thank-you"]',
            "JOURNEYMAN_PUBLIC_URL": self.env.get("JOURNEYMAN_PUBLIC_URL")
            or f"http://127.0.0.1:{self.ports['profile']}",
            "JOURNEYMAN_CHANNELS_PUBLIC_URL": self.env.get("JOURNEYMAN_CHANNELS_PUBLIC_URL")
            or f"http://127.0.0.1:{self.ports['channels']}",
            # the profile service's console and analytics call the other three
            **{f"JOURNEYMAN_{peer.upper()}_URL": f"http://127.0.0.1:{self.ports[peer]}"
               for peer in ("segmenter", "journey", "channels")},
            **(
                {"JOURNEYMAN_TWILIO_BASE_URL": providers_url,
                 "JOURNEYMAN_FCM_BASE_URL": providers_url}
                if providers_url
                else {}
            ),
        }  # fmt: skip
        self.info = StackInfo(
            home=str(self.home), database_url=database_url, kafka_bootstrap_servers=bootstrap,
            embedded_database=self._postgres is not None, embedded_broker=self._kafka is not None,
            smtp=f"{smtp_host}:{smtp_port}", outbox_dir=str(outbox_dir),
            write_key=write_key, api_key=api_key, providers=providers_url,
        )  # fmt: skip
        for service in SERVICES:
            port = self.ports[service]
            self.say(f"starting the {service} service on port {port}")
            self._spawn(
                service,
                [sys.executable, "-m", "journeyman.cli", "serve", service, "--port", str(port)],
                service_env,
            )
            self.info.services[service] = f"http://127.0.0.1:{port}"
        self._write_state()
        self.wait_ready(timeout_s)
        return self.info

    def infrastructure_pids(self) -> dict[str, int]:
        """The embedded PostgreSQL's postmaster and broker, when this stack started them."""
        found = {
            "postgres": self._postgres.pid if self._postgres else None,
            "broker": self._kafka.pid if self._kafka else None,
        }
        return {name: pid for name, pid in found.items() if pid is not None}

    def _spawn(self, name: str, argv: list[str], extra_env: Mapping[str, str]) -> None:
        self._commands[name] = (argv, dict(extra_env))
        env = {**self.env, **extra_env, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            argv,
            cwd=self.project_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs[name] = proc
        log_dir = self.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (log_dir / f"{name}.log").open("a", encoding="utf-8")
        self._logs.append(log_file)
        sinks: list[IO[str]] = [log_file, *([sys.stdout] if self.echo_logs else [])]
        assert proc.stdout is not None
        threading.Thread(target=_pump, args=(proc.stdout, f"[{name}]", sinks), daemon=True).start()

    def _write_state(self) -> None:
        assert self.info is not None
        self.info.pids = {name: proc.pid for name, proc in self._procs.items()}
        state = self.home / "state.json"
        state.write_text(json.dumps(asdict(self.info), indent=2))
        state.chmod(0o600)

    def add_replica(self, service: str, timeout_s: float = 60) -> str:
        """Start one more process of a service (same consumer groups) and wait until it is
        ready; returns its process name, e.g. `journey#2`."""
        assert self.info is not None
        argv, extra_env = self._commands[service]
        count = sum(1 for name in self._procs if name.split("#")[0] == service)
        name, port = f"{service}#{count + 1}", free_port()
        self._spawn(name, [*argv[:-1], str(port)], extra_env)
        self.info.services[name] = f"http://127.0.0.1:{port}"
        self._write_state()
        self.wait_ready(timeout_s, only=[name])
        return name

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill one process (for fault tests): no clean shutdown with SIGKILL."""
        proc = self._procs[name]
        os.killpg(proc.pid, sig)
        proc.wait()

    def restart(self, name: str, timeout_s: float = 60) -> None:
        """Start a killed process again with the same command, and wait until it is ready."""
        argv, extra_env = self._commands[name]
        self._spawn(name, argv, extra_env)
        self._write_state()
        if name in SERVICES:
            self.wait_ready(timeout_s, only=[name])

    def wait_ready(self, timeout_s: float, only: list[str] | None = None) -> None:
        """Wait until every service answers `/readyz` with 200; fail early if one dies."""
        assert self.info is not None
        deadline = time.monotonic() + timeout_s
        pending = {k: v for k, v in self.info.services.items() if only is None or k in only}
        with httpx.Client(timeout=2) as client:
            while pending:
                for name, proc in self._procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with code {proc.returncode}; "
                            f"see {self.home / 'logs' / (name + '.log')}"
                        )
                for name, url in list(pending.items()):
                    try:
                        if client.get(f"{url}/readyz").status_code == 200:
                            del pending[name]
                            self.say(f"{name} is ready")
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout_s:.0f}s: {', '.join(pending)}")
                time.sleep(0.2)

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        for name in reversed(list(self._procs)):
            _terminate(self._procs[name])
        self._procs.clear()
        if self._kafka is not None:
            self._kafka.stop()
        if self._postgres is not None:
            self._postgres.stop()
        for log_file in self._logs:
            log_file.close()
        (self.home / "state.json").unlink(missing_ok=True)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def read_state(home: Path) -> StackInfo | None:
    path = home / "state.json"
    if not path.exists():
        return None
    return StackInfo(**json.loads(path.read_text()))


def stop_leftovers(home: Path) -> None:
    """A stack killed without cleanup leaves processes holding our ports: end them first."""
    info = read_state(home)
    if info is None:
        return
    for pid in info.pids.values():
        try:
            if "journeyman.cli" in " ".join(psutil.Process(pid).cmdline()):
                os.killpg(pid, signal.SIGTERM)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    time.sleep(0.5)
    (home / "state.json").unlink(missing_ok=True)
