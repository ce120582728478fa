"""A pymodbus server for the write tests: writable tables, a read-only register, a clamping one.

The server records the function code of every request it receives, so a test can
tell FC5 from FC15 and FC6 from FC16.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from edge_agent.commands.config import WritesConfig
from edge_agent.sources.modbus.config import ModbusSourceConfig

LOCKED = 400  # a holding register the device lets one read, never write
CLAMPED = 410  # a holding register the device caps at CLAMP_AT when written
CLAMP_AT = 50

REGISTERS: list[dict[str, Any]] = [
    {"name": "sp_u16", "address": 10, "scale": 0.1, "write": {"min": 0, "max": 500}},
    {"name": "sp_f32", "address": 20, "data_type": "float32", "byte_order": "CDAB",
     "write": {"min": -1000, "max": 1000}},
    {"name": "sp_i32", "address": 30, "data_type": "int32", "byte_order": "DCBA",
     "write": {"min": -100000, "max": 100000}},
    {"name": "sp_multi", "address": 40, "write": {"min": 0, "max": 1000, "function": "multiple"}},
    {"name": "run", "table": "coil", "address": 5, "data_type": "bool", "write": {}},
    {"name": "run_multi", "table": "coil", "address": 6, "data_type": "bool",
     "write": {"function": "multiple"}},
    {"name": "locked", "address": LOCKED, "write": {"min": 0, "max": 100}},
    {"name": "clamped", "address": CLAMPED, "write": {"min": 0, "max": 100}},
    {"name": "temp", "address": 50},
]  # fmt: skip

WRITES_ON = WritesConfig.model_validate({"mode": "on", "min_interval": "0s"})


@dataclass
class Trace:
    """Function codes of the requests received, in order."""

    codes: list[int] = field(default_factory=list)

    def pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            self.codes.append(pdu.function_code)
        return pdu


async def clamp(_fc: int, start: int, address: int, _count: int, _regs: Any, values: Any) -> None:
    if values and address == CLAMPED and values[0] > CLAMP_AT:
        values[0] = CLAMP_AT  # the device takes the write and keeps its own limit


def held_at(address: int, held: asyncio.Event, release: asyncio.Event) -> SimAction:
    """An action that holds a write to ``address`` (``held`` set) until ``release``."""

    async def hold(fc: int, start: int, at: int, count: int, regs: Any, values: Any) -> None:
        if values and at == address:
            held.set()
            await release.wait()
        await clamp(fc, start, at, count, regs, values)

    return hold


def plant_device(unit: int = 1, action: SimAction = clamp) -> SimDevice:
    """Holding 0..299 writable, 400 read-only, 410 clamping; coils 0..63."""
    holding = [
        SimData(0, count=300, values=0, datatype=DataType.REGISTERS),
        SimData(LOCKED, count=1, values=7, datatype=DataType.REGISTERS, readonly=True),
        SimData(CLAMPED, count=1, values=0, datatype=DataType.REGISTERS),
    ]
    coils = [SimData(0, count=64, values=False, datatype=DataType.BITS)]
    inputs = [SimData(0, count=10, values=0, datatype=DataType.REGISTERS)]
    discrete = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    return SimDevice(id=unit, simdata=(coils, discrete, holding, inputs), action=action)


@contextlib.asynccontextmanager
async def modbus_plant(
    port: int, action: SimAction = clamp
) -> AsyncIterator[tuple[ModbusTcpServer, Trace]]:
    """The server on ``127.0.0.1:port`` for the duration of the block.

    ``action`` sees each write's values before they are stored (default: the clamp).
    """
    trace = Trace()
    device = plant_device(action=action)
    server = ModbusTcpServer([device], address=("127.0.0.1", port), trace_pdu=trace.pdu)
    await server.serve_forever(background=True)
    try:
        yield server, trace
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def plant_config(port: int, **extra: Any) -> ModbusSourceConfig:
    """A source polling the plant every 50 ms with its writable registers."""
    return ModbusSourceConfig.model_validate(
        {"type": "modbus", "name": "plc", "url": f"tcp://127.0.0.1:{port}", "interval": "50ms",
         "timeout": "500ms", "registers": REGISTERS, **extra}
    )  # fmt: skip


async def server_words(server: ModbusTcpServer, fc: int, address: int, count: int) -> list[Any]:
    """What the server's memory holds (read without going through the client)."""
    values = await server.context.async_getValues(1, fc, address, count)
    assert isinstance(values, list), values
    return values
