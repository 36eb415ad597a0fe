"""Providers against the local servers that speak their APIs: transient errors are retried
with backoff until the provider answers, permanent ones are recorded at once with the
provider's words, the token bucket holds the rate, and a dead SMTP server is a transient
failure, never a crash."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from journeyman.embedded import free_port
from services.channels.providers.base import Message
from services.channels.providers.email import SmtpProvider
from services.channels.providers.push import FcmPush
from services.channels.providers.sender import RateLimitedProvider
from services.channels.providers.sms import TwilioSms
from services.channels.settings import ChannelsSettings
from tests.channels_support import Local

pytestmark = pytest.mark.integration


def _settings(local: Local, **overrides: Any) -> ChannelsSettings:
    return ChannelsSettings.model_validate({
        "twilio_base_url": local.providers.url, "fcm_base_url": local.providers.url,
        "smtp_host": local.inbox.host, "smtp_port": local.inbox.port, **overrides,
    })  # fmt: skip


async def _outage(local: Local, count: int, status: int) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{local.providers.url}/_fail", json={"count": count, "status": status})


def _sms(to: str, i: int = 0) -> Message:
    return Message(f"d{i}", "sms", to, {"sms": f"hello {i}"})


async def test_transient_errors_are_retried_until_the_provider_answers(local: Local) -> None:
    sms = TwilioSms(_settings(local))
    await sms.start()
    try:
        await _outage(local, 2, 503)
        result = await RateLimitedProvider(sms, 1_000, tries=4, backoff_s=0.01).send(
            _sms("+33611111111")
        )
        assert (result.status, result.tries) == ("sent", 3)
        assert result.provider_id is not None
        assert result.provider_id.startswith("SM")
        await _outage(local, 5, 429)
        gave_up = await RateLimitedProvider(sms, 1_000, tries=3, backoff_s=0.01).send(
            _sms("+33611111111", 1)
        )
        assert (gave_up.status, gave_up.tries) == ("failed", 3)
        assert gave_up.reason is not None
        assert "gave up after 3 tries" in gave_up.reason
    finally:
        await sms.close()
    assert len(local.providers.received.sms) == 1


async def test_permanent_errors_are_recorded_at_once(local: Local) -> None:
    settings = _settings(local)
    sms, push = TwilioSms(settings), FcmPush(settings)
    await sms.start()
    await push.start()
    try:
        refused = await RateLimitedProvider(sms, 1_000, backoff_s=0.01).send(
            _sms("+15005550001")  # Twilio's magic invalid number
        )
        assert (refused.status, refused.tries) == ("failed", 1)
        assert refused.reason is not None
        assert "21211" in refused.reason
        token = Message("d2", "push", "invalid", {"push_title": "t", "push_body": "b"})
        unregistered = await RateLimitedProvider(push, 1_000, backoff_s=0.01).send(token)
        assert unregistered.status == "failed"
        assert unregistered.reason is not None
        assert "UNREGISTERED" in unregistered.reason
        wrong_key = TwilioSms(_settings(local, twilio_auth_token="nope"))
        await wrong_key.start()
        try:
            denied = await RateLimitedProvider(wrong_key, 1_000).send(_sms("+33611111111"))
        finally:
            await wrong_key.close()
        assert (denied.status, denied.tries) == ("failed", 1)
    finally:
        await sms.close()
        await push.close()
    assert local.providers.received.sms == []


async def test_the_token_bucket_holds_the_rate(local: Local) -> None:
    sms = TwilioSms(_settings(local))
    await sms.start()
    limited = RateLimitedProvider(sms, rate_per_s=50)
    try:
        started = time.monotonic()
        for i in range(40):
            assert (await limited.send(_sms("+33611111111", i))).status == "sent"
        elapsed = time.monotonic() - started
    finally:
        await sms.close()
    # 50/s with a bucket of 5: 40 messages need at least (40 - 5) / 50 = 0.7 s
    assert elapsed >= 0.65


async def test_an_unreachable_smtp_server_is_a_transient_failure(local: Local) -> None:
    email = SmtpProvider(_settings(local, smtp_port=free_port()))
    message = Message("d3", "email", "a@example.com",
                      {"subject": "s", "html": "<p>h</p>", "text": "t"})  # fmt: skip
    result = await RateLimitedProvider(email, 1_000, tries=2, backoff_s=0.01).send(message)
    assert (result.status, result.tries) == ("failed", 2)
    assert (await email.health()).startswith("unreachable")
    ok = SmtpProvider(_settings(local))
    sent = await RateLimitedProvider(ok, 1_000).send(message)
    await ok.close()
    assert sent.status == "sent"
    assert len(local.emails()) == 1
    assert local.emails()[0]["Subject"] == "s"


async def test_an_answer_that_comes_too_late_is_unknown_and_never_retried(local: Local) -> None:
    """The provider took the message but answered after the client gave up: a retry could send
    it twice (no idempotency key), so the outcome is `unknown` after one try."""
    sms = TwilioSms(_settings(local, http_timeout_s=0.5))
    await sms.start()
    try:
        async with httpx.AsyncClient() as client:
            await client.post(f"{local.providers.url}/_slow", json={"count": 1, "seconds": 2})
        late = await RateLimitedProvider(sms, 1_000, tries=4, backoff_s=0.01).send(
            _sms("+33611111111")
        )
        assert (late.status, late.tries) == ("unknown", 1)
        assert late.reason is not None
        assert "ReadTimeout" in late.reason
        on_time = await RateLimitedProvider(sms, 1_000, tries=4, backoff_s=0.01).send(
            _sms("+33611111111", 1)
        )
        assert on_time.status == "sent"
    finally:
        await sms.close()
    assert [m["Body"] for m in local.providers.received.sms] == ["hello 0", "hello 1"]


class _Recorder:
    """What an SMTP server that requires STARTTLS and AUTH saw of each accepted message."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        self.seen.append({
            "tls": session.ssl is not None, "authenticated": session.authenticated,
            "login": session.auth_data.login if session.auth_data else None,
            "rcpt": envelope.rcpt_tos, "content": envelope.content,
        })  # fmt: skip
        return "250 OK"


def _authenticator(_server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: PLC0415

    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"relay", b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
def tls_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A relay on 127.0.0.1 with a certificate of a CA made here, that the client trusts
    through SSL_CERT_FILE (read by `ssl.create_default_context`, as aiosmtplib uses it)."""
    import trustme  # noqa: PLC0415
    from aiosmtpd.controller import Controller  # noqa: PLC0415

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    recorder = _Recorder()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=free_port(), tls_context=server_context,
        require_starttls=True, authenticator=_authenticator, auth_required=True,
        auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield controller.port, recorder, ca_file
    finally:
        controller.stop()


def _tls_settings(port: int, **overrides: Any) -> ChannelsSettings:
    return ChannelsSettings.model_validate({
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": True,
        "smtp_username": "relay", "smtp_password": "s3cret", **overrides,
    })  # fmt: skip


async def test_smtp_starttls_and_auth_against_a_relay_that_requires_both(
    tls_relay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configured STARTTLS and AUTH are really used: the relay refuses MAIL before both,
    a certificate the client does not trust is refused by the client, a wrong password is a
    permanent failure with the relay's code, and the right settings deliver over TLS."""
    port, recorder, ca_file = tls_relay
    message = Message("d-tls", "email", "a@example.com",
                      {"subject": "over TLS", "html": "<p>h</p>", "text": "t"})  # fmt: skip

    untrusted = SmtpProvider(_tls_settings(port))  # the CA is not trusted yet
    refused = await RateLimitedProvider(untrusted, 1_000, tries=1).send(message)
    await untrusted.close()
    assert refused.status == "failed"
    assert refused.reason is not None
    assert "CERTIFICATE_VERIFY_FAILED" in refused.reason

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    no_tls = SmtpProvider(_tls_settings(port, smtp_starttls=False))
    plain = await RateLimitedProvider(no_tls, 1_000, tries=1).send(message)
    await no_tls.close()
    assert plain.status == "failed"  # AUTH is refused over plain text, so is MAIL

    wrong = SmtpProvider(_tls_settings(port, smtp_password="nope"))
    denied = await RateLimitedProvider(wrong, 1_000, tries=3, backoff_s=0.01).send(message)
    await wrong.close()
    assert (denied.status, denied.tries) == ("failed", 1)
    assert denied.reason is not None
    assert "535" in denied.reason
    assert recorder.seen == []

    good = SmtpProvider(_tls_settings(port))
    try:
        for i in range(3):  # one pooled connection serves them all, still over TLS
            sent = await RateLimitedProvider(good, 1_000, tries=1).send(
                Message(f"d-tls-{i}", "email", "a@example.com", message.parts)
            )
            assert sent.status == "sent", sent.reason
    finally:
        await good.close()
    assert len(recorder.seen) == 3
    for seen in recorder.seen:
        assert (seen["tls"], seen["authenticated"], seen["login"]) == (True, True, b"relay")
        assert seen["rcpt"] == ["a@example.com"]
        assert b"Subject: over TLS" in seen["content"]
