"""The local SMTP inbox: a real SMTP exchange ends as exactly one intact `.eml` file, both with
the in-process server and with `serve_forever` run as its own process and stopped by SIGTERM."""

from __future__ import annotations

import signal
import smtplib
import socket
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import aiosmtplib

from journeyman.embedded import free_port
from journeyman.inbox import SmtpInbox


def _message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Journeyman <journeys@shop.example>"
    msg["To"] = to
    msg["Subject"] = "Your basket misses you — 10% off ✉"
    msg.set_content("Plain body: come back, Ada.\n")
    msg.add_alternative("<p>HTML body: come back, <b>Ada</b>.</p>\n", subtype="html")
    return msg


def _parse(path: Path) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_a_multipart_message_becomes_one_intact_eml(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    inbox = SmtpInbox(outbox)
    host, port = inbox.start()
    try:
        assert (host, port) == ("127.0.0.1", inbox.port)
        assert port > 0
        sent = _message("Ada Lovelace <ada@example.com>")
        await aiosmtplib.send(
            sent, hostname=host, port=port, recipients=["ada@example.com", "audit@shop.example"]
        )
        files = inbox.messages()
        assert len(files) == 1
        assert files[0].suffix == ".eml"
        assert list(outbox.iterdir()) == files  # no partial .tmp left behind

        mail = _parse(files[0])
        assert mail["To"] == "Ada Lovelace <ada@example.com>"
        assert mail["Subject"] == "Your basket misses you — 10% off ✉"
        assert mail["X-Journeyman-Envelope-To"] == "ada@example.com, audit@shop.example"
        assert mail["Return-Path"] == "<journeys@shop.example>"
        assert mail.get_content_type() == "multipart/alternative"
        plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert plain is not None
        assert html is not None
        assert plain.get_content().replace("\r\n", "\n") == "Plain body: come back, Ada.\n"
        assert (
            html.get_content().replace("\r\n", "\n") == "<p>HTML body: come back, <b>Ada</b>.</p>\n"
        )
        # the message itself is stored byte for byte after the two trace headers
        assert files[0].read_bytes().split(b"\r\n", 2)[2].startswith(b"From: Journeyman")
    finally:
        inbox.stop()


def test_serve_forever_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    code = "import sys; from pathlib import Path; from journeyman.inbox import serve_forever; "
    code += "serve_forever(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "the inbox process exited"
                assert time.monotonic() < deadline, "the inbox never listened"
                time.sleep(0.05)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(_message("grace@example.com"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    (only,) = SmtpInbox(tmp_path).messages()
    assert _parse(only)["To"] == "grace@example.com"
