"""A local SMTP server that keeps every message it receives as an `.eml` file: the inbox of the
embedded stack, where the demo's emails can be opened with any mail client."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _SaveToDirectory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.directory / f"{stamp}-{uuid.uuid4().hex}.eml"
        partial = target.with_suffix(".tmp")
        partial.write_bytes(data)
        os.replace(partial, target)  # a reader never sees half a message
        return "250 Message accepted for delivery"


class SmtpInbox:
    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.host = host
        self._wanted_port = port
        self._controller: Controller | None = None

    def start(self) -> tuple[str, int]:
        from journeyman.embedded import free_port  # noqa: PLC0415

        self.directory.mkdir(parents=True, exist_ok=True)
        port = self._wanted_port or free_port()
        self._controller = Controller(
            _SaveToDirectory(self.directory), hostname=self.host, port=port,
            data_size_limit=10 * 1024 * 1024,
        )  # fmt: skip
        self._controller.start()
        return self.host, port

    @property
    def port(self) -> int:
        assert self._controller is not None
        return int(self._controller.port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))


def serve_forever(directory: Path, host: str = "127.0.0.1", port: int = 2525) -> None:
    """Run the inbox until SIGINT or SIGTERM (`journeyman up` runs it as its own process)."""
    inbox = SmtpInbox(directory, host, port)
    inbox.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    inbox.stop()
