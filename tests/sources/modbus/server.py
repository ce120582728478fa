"""Real Modbus peers for the Modbus tests: pymodbus servers over TCP and a socat pty pair.

Each device has zero-filled valid ranges per table; addresses outside them are
illegal (the server answers exception 2). A *silent* device never answers,
like a dead unit on an RS-485 line.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

Ranges = Sequence[tuple[int, int]]  # (start, count)

# function codes whose table the server writes when the test sets values
_WRITE_FC = {"coil": 15, "discrete": 2, "holding": 16, "input": 4}


@dataclass
class Silence:
    """Makes a device never answer; remembers the hanging handlers to cancel them."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def action(self, *_args: object) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        await asyncio.sleep(3600)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


def device(
    unit: int,
    *,
    holding: Ranges = ((0, 300),),
    input_: Ranges = ((0, 300),),
    coils: Ranges = ((0, 64),),
    discrete: Ranges = ((0, 64),),
    silence: Silence | None = None,
) -> SimDevice:
    """A device whose tables are valid exactly over the given ranges."""

    def regs(ranges: Ranges) -> list[SimData]:
        return [SimData(a, count=n, values=0, datatype=DataType.REGISTERS) for a, n in ranges]

    def bits(ranges: Ranges) -> list[SimData]:
        return [SimData(a, count=n, values=False, datatype=DataType.BITS) for a, n in ranges]

    return SimDevice(
        id=unit,
        simdata=(bits(coils), bits(discrete), regs(holding), regs(input_)),
        action=silence.action if silence else None,
    )


@dataclass
class Wire:
    """The read requests a server received: (unit, function code, address, count)."""

    requests: list[tuple[int, int, int, int]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def trace(self, sending: bool, pdu: Any) -> Any:
        if not sending and pdu.function_code in (1, 2, 3, 4):
            self.requests.append((pdu.dev_id, pdu.function_code, pdu.address, pdu.count))
            self.arrived.set()
        return pdu


class Peer:
    """A running pymodbus server, what it received, and how to change its values."""

    def __init__(self, server: Any, wire: Wire, silence: Silence | None = None) -> None:
        self.server = server
        self.wire = wire
        self.silence = silence

    async def set(
        self, unit: int, table: str, address: int, values: list[int] | list[bool]
    ) -> None:
        """Write values straight into the server's memory."""
        result = await self.server.context.async_setValues(unit, _WRITE_FC[table], address, values)
        assert result is None, f"server refused to set {table} {address}: {result}"

    async def stop(self) -> None:
        if self.silence:
            self.silence.cancel()
        await self.server.shutdown()


async def start_tcp(
    devices: list[SimDevice], port: int, framer: FramerType = FramerType.SOCKET,
    silence: Silence | None = None,
) -> Peer:  # fmt: skip
    """Start a TCP server on loopback (``framer=RTU`` or ``ASCII``: those frames over TCP)."""
    wire = Wire()
    server = ModbusTcpServer(
        devices, address=("127.0.0.1", port), framer=framer, trace_pdu=wire.trace
    )
    await server.serve_forever(background=True)
    return Peer(server, wire, silence)


async def start_rtu(
    devices: list[SimDevice], tty: str, silence: Silence | None = None,
    framer: FramerType = FramerType.RTU,
) -> Peer:  # fmt: skip
    """Start an RTU server (``framer=ASCII``: an ASCII one) on one end of a pty pair."""
    wire = Wire()
    server = ModbusSerialServer(
        devices, port=tty, framer=framer, baudrate=19200, trace_pdu=wire.trace
    )
    await server.serve_forever(background=True)
    return Peer(server, wire, silence)


@contextlib.asynccontextmanager
async def tcp_peer(
    devices: list[SimDevice], port: int, framer: FramerType = FramerType.SOCKET,
    silence: Silence | None = None,
) -> AsyncIterator[Peer]:  # fmt: skip
    """A TCP server for the duration of the block."""
    peer = await start_tcp(devices, port, framer, silence)
    try:
        yield peer
    finally:
        await peer.stop()


@contextlib.contextmanager
def pty_pair(folder: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys made by socat: (server end, client end)."""
    socat = shutil.which("socat")
    assert socat, "socat is needed for the RTU tests (apt-get install socat)"
    server, client = folder / "server", folder / "client"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={server}", f"pty,raw,echo=0,link={client}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (server.exists() and client.exists()):
            assert time.monotonic() < deadline, "socat did not create the pty pair"
            assert proc.poll() is None, "socat exited"
            time.sleep(0.01)
        yield str(server), str(client)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
