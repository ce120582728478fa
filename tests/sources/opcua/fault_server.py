"""An asyncua server in a process of its own, for fault tests: it can be SIGKILLed.

``python -m tests.sources.opcua.fault_server PORT START VALUES`` serves
``ns=2;s=Counter`` and ``ns=2;s=Gone`` (Doubles) and ``ns=2;s=Flag`` (Boolean).
Every 100 ms it writes the next counter value (from START) to the counters that
exist, with the source time of the write, then appends the value to the file
VALUES (flushed): what the server wrote, to compare with what the agent recorded.
It prints ``ready`` once it listens. Lines on stdin are commands:
``delete``/``add`` (the node Gone; deleting first reports BadNodeIdUnknown to its
monitored items, as a server should), ``close-sessions`` (as a session timeout would).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from asyncua import ua as _ua
from asyncua.server.server import Server

ua: Any = _ua
NS = "urn:edge-agent:faults"
TICK = 0.1


class Plant:
    """The server, its counters and the command loop."""

    def __init__(self, port: int, start: int, values: Path) -> None:
        self.port, self.value, self.values = port, start, values
        self.server = Server()
        self.idx = 0
        self.counters: dict[str, Any] = {}

    async def run(self) -> None:
        await self.server.init()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/faults")
        self.idx = await self.server.register_namespace(NS)
        for name in ("Counter", "Gone"):
            await self._add(name)
        flag = ua.NodeId("Flag", self.idx)
        objects = self.server.nodes.objects
        await objects.add_variable(flag, ua.QualifiedName("Flag", self.idx), False)
        async with self.server:
            print("ready", flush=True)
            await asyncio.gather(self._count(), self._commands())

    async def _add(self, name: str) -> None:
        node_id = ua.NodeId(name, self.idx)
        qname = ua.QualifiedName(name, self.idx)
        self.counters[name] = await self.server.nodes.objects.add_variable(node_id, qname, 0.0)

    async def _count(self) -> None:
        with self.values.open("a", encoding="utf-8") as out:
            while True:
                stamp = dt.datetime.now(dt.UTC)
                data = ua.DataValue(
                    Value=ua.Variant(float(self.value), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                for var in list(self.counters.values()):
                    await var.write_value(data)
                out.write(f"{self.value}\n")
                out.flush()
                self.value += 1
                await asyncio.sleep(TICK)

    async def _commands(self) -> None:
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            await self._command(line)
            print(f"done {line}", flush=True)

    async def _command(self, line: str) -> None:
        if line == "delete":
            var = self.counters.pop("Gone")
            # A server tells the monitored items of a deleted node BadNodeIdUnknown;
            # asyncua 2.1 means to (address_space._delete_node_callbacks) but calls an
            # async callback without awaiting it, so the test server says it itself.
            gone = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown))
            await var.write_value(gone)
            await self.server.delete_nodes([var])
        elif line == "add":
            await self._add("Gone")
        elif line == "close-sessions":
            for session in list(self.server.iserver._external_sessions.values()):
                await session.close_session(True)


if __name__ == "__main__":
    port, start, values = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    asyncio.run(Plant(port, start, values).run())
