"""Email over SMTP with aiosmtplib (STARTTLS and AUTH when configured)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from services.channels.templates import RenderedEmail
from shared.settings import Settings


class TransientSendError(Exception):
    """Worth retrying: the provider is away or throttling."""


class PermanentSendError(Exception):
    """Never worth retrying: the address or message is refused."""


class SmtpProvider:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, to: str, email: RenderedEmail, dispatch_id: str) -> str:
        """Send one message; return its Message-ID."""
        message = EmailMessage()
        message["From"] = self._settings.email_from
        message["To"] = to
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(domain="journeyman.local")
        message["X-Journeyman-Dispatch-Id"] = dispatch_id
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        s = self._settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentSendError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentSendError(f"SMTP {exc.code}: {exc.message}") from exc
            raise TransientSendError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        return str(message["Message-ID"])
