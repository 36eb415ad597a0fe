"""The latency benchmarks say how much of the machine the broker and PostgreSQL took while
they measured: the processes are found by the port they listen on, and a part's share is its
CPU time over the block's wall time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from journeyman.bench.common import cpu_shares, listener_pid, percent


def test_the_process_listening_on_a_port_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        found = listener_pid(f"127.0.0.1:{server.getsockname()[1]}")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]  # bound, never listening
    assert found == os.getpid()
    assert listener_pid(f"127.0.0.1:{closed}") is None


def test_a_busy_process_shows_its_share_and_a_missing_one_is_left_out() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.2)  # the interpreter started
        with cpu_shares({"busy": busy.pid, "absent": None}) as shares:
            time.sleep(0.6)
    finally:
        busy.kill()
        busy.wait()
    assert set(shares.of_one_core) == {"busy"}
    assert shares.of_one_core["busy"] > 20  # a spinning loop: most of a core, on any machine
    assert shares.machine_busy > 0
    assert percent(None) == "unknown"
    assert percent(12.34) == "12.3"
