"""A serial device server in raw TCP mode (a Moxa NPort, say), played by the test.

A real asyncio TCP server on a free loopback port: whatever the test writes goes to
the connected client as if a sensor had sent it on the serial side, and whatever the
client sends is kept in :attr:`DeviceServer.received`. Stopping it closes the
listener and every connection (a device server rebooting); starting it again
listens on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self

from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.source import SerialSource
from tests.sources.serial.pty_pair import VIB, WAIT


class DeviceServer:
    """Listens on 127.0.0.1; :attr:`url` is the source's ``port``."""

    def __init__(self) -> None:
        self.port = 0  # a free one at the first start, the same one after
        self.received = bytearray()
        self.connections = 0
        self._clients: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection, as a reboot of the device server does."""
        assert self._server is not None
        self._server.close()
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._connected.clear()
        await self._server.wait_closed()
        async with asyncio.timeout(WAIT):  # 3.11's wait_closed does not wait for them
            await asyncio.gather(*self._handlers)

    async def client(self) -> None:
        """Wait until a client is connected."""
        async with asyncio.timeout(WAIT):
            await self._connected.wait()

    def write(self, data: bytes) -> None:
        """Send ``data`` to every connected client, as the sensor's bytes."""
        for client in self._clients:
            client.write(data)

    async def read_until(self, end: bytes) -> bytes:
        """What the clients sent, once it ends in ``end``."""
        async with asyncio.timeout(WAIT):
            while not self.received.endswith(end):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        data, self.received = bytes(self.received), bytearray()
        return data

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._clients.append(writer)
        self._connected.set()
        with contextlib.suppress(OSError):
            while data := await reader.read(1024):
                self.received += data

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None and self._server.is_serving():
            await self.stop()


def make_tcp(server: DeviceServer, **keys: Any) -> SerialSource:
    """A source named vib1 on the server's endpoint; by default it parses VIB lines by regex."""
    raw = {"type": "serial", "name": "vib1", "port": server.url} | keys
    raw.setdefault("parse", {"pattern": VIB})
    return SerialSource(SerialSourceConfig.model_validate(raw))
