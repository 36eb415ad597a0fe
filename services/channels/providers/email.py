"""Email over SMTP with aiosmtplib (STARTTLS and AUTH when configured), through a small pool
of open connections: a new TCP + EHLO (+ TLS) handshake per message would cost more than the
message itself."""

from __future__ import annotations

import asyncio
import contextlib
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from services.channels.providers.base import Message, PermanentSendError, TransientSendError
from services.channels.settings import ChannelsSettings


def build_email(message: Message, sender: str) -> tuple[EmailMessage, str]:
    email = EmailMessage()
    message_id = make_msgid(domain="journeyman.local")
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.parts["subject"]
    email["Message-ID"] = message_id
    email["X-Journeyman-Dispatch-Id"] = message.dispatch_id
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.parts["text"])
    email.add_alternative(message.parts["html"], subtype="html")
    return email, message_id


class SmtpProvider:
    channel = "email"

    def __init__(self, settings: ChannelsSettings) -> None:
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.smtp_pool_size)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls, timeout=30,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        )  # fmt: skip
        await client.connect()
        return client

    async def send(self, message: Message) -> str:
        email, message_id = build_email(message, self._settings.email_from)
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                await client.send_message(email)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._idle.put_nowait(client)  # type: ignore[arg-type]
                raise PermanentSendError(f"recipient refused: {exc}") from exc
            except aiosmtplib.SMTPResponseException as exc:
                await _drop(client)
                if 500 <= exc.code < 600:
                    raise PermanentSendError(f"SMTP {exc.code}: {exc.message}") from exc
                raise TransientSendError(f"SMTP {exc.code}: {exc.message}") from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                await _drop(client)
                raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
            self._idle.put_nowait(client)
        return message_id

    async def health(self) -> str:
        try:
            client = await self._connect()
            await client.noop()
            await client.quit()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return f"unreachable: {type(exc).__name__}: {exc}"
        return "ok"


async def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            client.close()
