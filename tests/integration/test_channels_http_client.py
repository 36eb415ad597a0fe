"""The providers' HTTP client against real sockets: where a request fails decides whether a
retry is safe. No connection (refused, timed out, untrusted certificate, none free in time) is
transient (the provider never saw it); a connection lost or reset after the request went out,
an answer too late or cut short, is ambiguous (`unknown`, never retried blindly). Answers are
read whole however they are framed, and a connection the server closes is never used again."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from journeyman.embedded import free_port
from journeyman.providers import LocalProviders
from services.channels.providers.base import (
    AmbiguousSendError,
    PermanentSendError,
    TransientSendError,
)
from services.channels.providers.http import HttpApi

pytestmark = pytest.mark.integration

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length:")),
        0,
    )  # fmt: skip
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def _serve(
    answer: Answerer, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    connections: list[int] = []  # one entry per accepted connection

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", connections
    finally:
        server.close()


async def _post_is_ambiguous(
    answer: Answerer, *, read_timeout: float = 5, match: str | None = None
) -> None:
    """A POST to a server answering with `answer` fails as AmbiguousSendError."""
    async with _serve(answer) as (url, _):
        api = HttpApi(url, 2, timeout=read_timeout)
        with pytest.raises(AmbiguousSendError, match=match):
            await api.post("/x", data=b"{}")
        await api.aclose()


async def test_no_connection_is_transient() -> None:
    api = HttpApi(f"http://127.0.0.1:{free_port()}", 2, timeout=1)
    with pytest.raises(TransientSendError):
        await api.post("/x", data=b"{}")
    await api.aclose()


@contextlib.contextmanager
def _full_backlog() -> Iterator[str]:
    """A listening socket that never accepts, its queue full: connecting to it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in (*fillers, listener):
            s.close()


async def test_a_connect_that_times_out_is_transient() -> None:
    with _full_backlog() as url:
        api = HttpApi(url, 2, timeout=0.3)
        with pytest.raises(TransientSendError, match="cannot connect"):
            await api.post("/x", data=b"{}")
        await api.aclose()


async def test_no_free_connection_in_time_is_transient() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(1.3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with _serve(slow) as (url, connections):
        api = HttpApi(url, 1, timeout=1.0)  # the one connection is busy past connect's 1 s
        first = asyncio.create_task(api.post("/x", data=b"{}"))
        await asyncio.sleep(0.1)
        with pytest.raises(TransientSendError, match="no connection free"):
            await api.post("/x", data=b"{}")
        assert (await first).json() == {}
        assert connections == [1]  # the second request never went out
        await api.aclose()


async def test_a_connection_reset_after_the_request_is_ambiguous() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)  # the provider has the message, then an RST
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    await _post_is_ambiguous(reset)


async def test_an_answer_cut_short_is_ambiguous() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{"sid"')
        await writer.drain()

    await _post_is_ambiguous(short)


async def test_https_trusts_ssl_cert_file_and_refuses_other_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untrusted certificate fails the handshake, before any request: transient. The CA
    named by SSL_CERT_FILE (as for `ssl.create_default_context`) is trusted."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen: list[bytes] = []

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{"sid":1}')
        await writer.drain()

    async with _serve(ok, server_context) as (url, _):
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        untrusted = HttpApi(url, 1, timeout=5)
        with pytest.raises(TransientSendError, match="certificate"):
            await untrusted.post("/x", data=b"{}")
        await untrusted.aclose()
        assert seen == []

        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusted = HttpApi(url, 1, timeout=5)
        assert (await trusted.post("/x", data=b"{}")).json() == {"sid": 1}
        await trusted.aclose()
        assert len(seen) == 1


async def test_a_connection_lost_after_the_request_is_ambiguous() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)  # the provider has the message, then the line drops

    await _post_is_ambiguous(hang_up)


async def test_a_late_answer_is_ambiguous() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    await _post_is_ambiguous(never, read_timeout=0.3, match="ReadTimeout")


async def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")  # fmt: skip
        await writer.drain()
        await _read_request(reader)  # kept alive: the next request comes on this connection
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"b": 2}')
        await writer.drain()

    async with _serve(chunked) as (url, connections):
        api = HttpApi(url, 1, timeout=5)
        assert (await api.post("/x", data=b"{}")).json() == {"a": 1}
        assert (await api.post("/x", data=b"{}")).json() == {"b": 2}
        assert connections == [1]
        await api.aclose()


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()

    async with _serve(once) as (url, connections):
        api = HttpApi(url, 1, timeout=5)
        for _ in range(3):
            assert (await api.post("/x", data=b"{}")).json() == {}
        assert len(connections) == 3
        await api.aclose()


async def test_refusals_keep_the_providers_words_and_the_connection() -> None:
    with LocalProviders() as local:
        api = HttpApi(local.url, 1, timeout=5, auth=("wrong", "key"))
        path = f"/2010-04-01/Accounts/{local.credentials.account_sid}/Messages.json"
        for _ in range(2):
            with pytest.raises(PermanentSendError, match=r"HTTP 401.*Authenticate"):
                await api.post(path, data="To=%2B1&From=%2B2&Body=hi")
        with pytest.raises(PermanentSendError, match="not a URL"):
            await api.post("ftp://example.com/x", data=b"")
        await api.aclose()
