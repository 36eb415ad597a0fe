"""The hand-built MIME message reads back as the same email in a standard parser."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from services.channels.providers.base import Message
from services.channels.providers.email import build_email


def test_email_reads_back_with_headers_bodies_and_no_injection() -> None:
    html = "<p>" + "Zélie, " * 400 + "</p>\n.dot at line start"
    message = Message(
        "d1", "email", "zelie@example.com",
        {"subject": "Merci Zélie\r\nBcc: evil@example.com", "html": html,
         "text": "Bonjour Zélie,\r\n\r\nmerci !"},
        {"List-Unsubscribe": "<https://ch.example/t/u/abc>"},
    )  # fmt: skip
    raw, message_id = build_email(message, "Shop <shop@example.com>")
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert mail["Subject"] == "Merci Zélie Bcc: evil@example.com"
    assert mail["Bcc"] is None
    assert mail["Message-ID"] == message_id
    assert mail["X-Journeyman-Dispatch-Id"] == "d1"
    assert mail["List-Unsubscribe"] == "<https://ch.example/t/u/abc>"
    text = mail.get_body(preferencelist=("plain",))
    body = mail.get_body(preferencelist=("html",))
    assert text is not None
    assert body is not None
    assert text.get_content().replace("\r\n", "\n") == "Bonjour Zélie,\n\nmerci !"
    assert body.get_content().replace("\r\n", "\n") == html
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
