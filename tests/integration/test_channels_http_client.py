"""The providers' HTTP client against real sockets: where a request fails decides whether a
retry is safe. No connection is transient (the provider never saw it); a connection lost after
the request went out is ambiguous (`unknown`, never retried blindly). Answers are read whole
however they are framed, and a connection the server closes is never used again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

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
async def _serve(answer: Answerer) -> AsyncIterator[tuple[str, list[int]]]:
    connections: list[int] = []  # one entry per accepted connection

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def test_no_connection_is_transient() -> None:
    api = HttpApi(f"http://127.0.0.1:{free_port()}", 2, timeout=1)
    with pytest.raises(TransientSendError):
        await api.post("/x", data=b"{}")
    await api.aclose()


async def test_a_connection_lost_after_the_request_is_ambiguous() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)  # the provider has the message, then the line drops

    async with _serve(hang_up) as (url, _):
        api = HttpApi(url, 2, timeout=5)
        with pytest.raises(AmbiguousSendError):
            await api.post("/x", data=b"{}")
        await api.aclose()


async def test_a_late_answer_is_ambiguous() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async with _serve(never) as (url, _):
        api = HttpApi(url, 2, timeout=0.3)
        with pytest.raises(AmbiguousSendError, match="ReadTimeout"):
            await api.post("/x", data=b"{}")
        await api.aclose()


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
