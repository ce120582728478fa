"""The plant's Modbus TCP server: pymodbus serving the register map of ``layout.py``.

Built on pymodbus's ``SimDevice``/``SimData`` (the datastore classes are
deprecated). The device's registers are refreshed from the latest reading just
before each request is answered, through the device's ``action`` hook, so a
client always sees the bank as one consistent snapshot.

Any other unit id answers like a TCP gateway whose serial device is silent:
exception 0x0B "gateway target device failed to respond" (pymodbus itself would
log a traceback and answer "device failure").
"""

from __future__ import annotations

import logging
from typing import Any

from edge_agent.sim.signal_map import MODBUS_UNIT, REGISTER_COUNT, REGISTERS

log = logging.getLogger(__name__)


class SimModbusServer:
    """A pymodbus TCP server on ``host:port`` with the plant's register map.

    Args:
        host: address to listen on.
        port: TCP port to listen on.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.bank: list[int] = [0] * REGISTER_COUNT
        self._server: Any = None

    async def start(self) -> None:
        """Listen; returns once the server accepts connections.

        Raises:
            OSError: the address cannot be bound.
        """
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimDevice

        devices = [
            SimDevice(id=MODBUS_UNIT, simdata=_simdata(), action=self._refresh),
            SimDevice(id=0, simdata=_silent_unit(), action=_gateway_silent),
        ]
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus reports a failed bind this way
            raise OSError(f"modbus server cannot listen on {self.host}:{self.port}") from exc
        self._server = server
        log.debug("modbus server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def _refresh(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        # pymodbus hands over the device's live register list (from start_address);
        # copying the latest bank in here is cheap (a dozen registers).
        offset = -start_address
        registers[offset : offset + REGISTER_COUNT] = self.bank


def _simdata() -> list[Any]:
    from pymodbus.simulator import DataType, SimData

    types = {"float32": DataType.FLOAT32, "int16": DataType.INT16, "uint16": DataType.UINT16}
    return [
        SimData(
            address=reg.address,
            values=0.0 if reg.data_type == "float32" else 0,
            datatype=types[reg.data_type],
            readonly=True,
        )
        for reg in REGISTERS
    ]


def _silent_unit() -> list[Any]:
    from pymodbus.simulator import DataType, SimData

    return [SimData(address=0, count=65536, values=0, datatype=DataType.REGISTERS)]


async def _gateway_silent(*_args: Any) -> Any:
    from pymodbus.constants import ExcCodes

    return ExcCodes.GATEWAY_NO_RESPONSE
