"""A local SMTP server that keeps every message it receives as an `.eml` file: the inbox of the
embedded stack, so the journeys' emails can be read with any mail client and checked by tests,
with no mail service to install.

Each file is the message exactly as received, after two prepended trace headers (`Return-Path`
and `X-Journeyman-Envelope-To`, the envelope, which Bcc recipients only appear in). Files are
named `<UTC timestamp>-<uuid>.eml`, so sorting them by name sorts them by arrival.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _SaveToDirectory:
    """Writes each message in the server's own thread, before answering 250. A write of a few
    KB to a local disk takes less than handing it to a worker thread: measured 80-90 against
    250-270 µs of CPU a message with `asyncio.to_thread`; the inbox serves only this machine."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        trace = f"Return-Path: <{envelope.mail_from or ''}>\r\n"
        trace += f"X-Journeyman-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.directory / f"{stamp}-{uuid.uuid4().hex}.eml"
        _write_atomically(target, trace.encode() + data)
        return "250 Message accepted for delivery"


class _CountOnly:
    """Accept and count, keep nothing: the benchmark's SMTP server, so disk writes are not
    what is measured."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, _server: SMTP, _session: Session, _envelope: Envelope) -> str:
        self.count += 1
        return "250 Message accepted for delivery"


# A path as journeys' mail has it: `<dot-atom@dot-atom>`, then ESMTP parameters. What it
# matches, aiosmtpd's parser (the email package's RFC 5322 one) reads identically.
_PLAIN_PATH = re.compile(
    r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)",
    re.DOTALL,
)


class _SMTP(SMTP):
    """aiosmtpd's server, reading plain `<local@domain>` paths without the email package's
    header parser: that parser was a third of the inbox's CPU per message (measured under
    `journeyman bench channels`). Any other path still goes through aiosmtpd's own."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.fullmatch(arg)
        if plain is None:
            return super()._getaddr(arg)
        local = plain[1].rpartition("@")[0]
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return plain[1], plain[2].lstrip()


def _write_atomically(target: Path, data: bytes) -> None:
    partial = target.with_suffix(".tmp")
    partial.write_bytes(data)
    os.replace(partial, target)  # a reader never sees half a message


class _Controller(Controller):
    """Serves on a socket we bound ourselves: port 0 works, and a taken port fails at once."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class SmtpInbox:
    """An SMTP server on `host:port` (port 0: any free one) that runs in its own thread."""

    def __init__(
        self, directory: Path, host: str = "127.0.0.1", port: int = 0, *, keep: bool = True
    ) -> None:
        self.directory = directory
        self.host = host
        self._wanted_port = port
        self._controller: _Controller | None = None
        self._handler: _SaveToDirectory | _CountOnly = (
            _SaveToDirectory(directory) if keep else _CountOnly()
        )

    def start(self) -> tuple[str, int]:
        """Listen (in a background thread); return the address to send to."""
        if self._controller is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.create_server((self.host, self._wanted_port), family=family)
            controller = _Controller(
                self._handler, sock, server_hostname="journeyman-inbox",
                data_size_limit=25 * 2**20,
            )  # fmt: skip
            try:
                controller.start()
            except BaseException:
                sock.close()
                raise
            self._controller = controller
        return self.host, self.port

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SmtpInbox is not started")
        return int(self._controller.port)

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def counted(self) -> int | None:
        """Messages accepted, in count-only mode (None when they are kept as files)."""
        return self._handler.count if isinstance(self._handler, _CountOnly) else None

    def messages(self) -> list[Path]:
        """The received messages, oldest first."""
        return sorted(self.directory.glob("*.eml"))

    def __enter__(self) -> SmtpInbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve_forever(
    directory: Path, host: str = "127.0.0.1", port: int = 2525, *, keep: bool = True
) -> None:
    """Run the inbox until SIGINT or SIGTERM (`journeyman up` runs it as its own process). In
    count-only mode the count is printed on the way out (`accepted <n>`)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SmtpInbox(directory, host, port, keep=keep) as inbox:
        stop.wait()
    if inbox.counted is not None:
        sys.stdout.write(f"accepted {inbox.counted}\n")
        sys.stdout.flush()
