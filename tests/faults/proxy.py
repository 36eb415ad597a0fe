"""A TCP proxy that can cut every connection and refuse new ones for a while: the broker
"unreachable" without losing what the in-memory broker holds."""

from __future__ import annotations

import asyncio
import contextlib
import ssl


class Proxy:
    def __init__(
        self, listen_port: int, target_port: int, tls: ssl.SSLContext | None = None
    ) -> None:
        """With `tls`, clients talk TLS to the proxy, which talks plain TCP to the target."""
        self.listen_port = listen_port
        self.target_port = target_port
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.listen_port, ssl=self._tls
        )

    async def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.close()
        self._pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
