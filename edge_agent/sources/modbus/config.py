"""The config of a Modbus source: transport, serial line, units and timing.

Its registers' models, and the :class:`RegisterTable` the running agent keeps them
in (see :meth:`ModbusSourceConfig.compact`), are in
:mod:`edge_agent.sources.modbus.registers`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import Field as PydanticField
from pydantic import field_validator, model_validator

from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.modbus.endpoint import Endpoint
from edge_agent.sources.modbus.registers import ModbusRegisterConfig, RegisterList, RegisterTable

_TIMEOUT_MOST = 1.0
_TIMEOUT_LEAST = 0.1
_RTU_REQUEST = 8  # unit, function, start, count, CRC
_RTU_REPLY_OVERHEAD = 5  # unit, function, byte count, CRC
# ASCII sends each byte as two hex characters, CRC's 2 bytes become a 1-byte LRC,
# and ':' and CR LF frame it: 1 + 2 x (bytes - 1) + 2 characters for RTU's bytes.
_ASCII_REQUEST = 1 + 2 * (_RTU_REQUEST - 1) + 2
_ASCII_REPLY_OVERHEAD = 1 + 2 * (_RTU_REPLY_OVERHEAD - 1) + 2


class SerialConfig(StrictModel):
    """Serial line settings for ``rtu://`` and ``ascii://`` URLs.

    For ``rtu+tcp://`` and ``ascii+tcp://`` they are the line behind the device
    server, used only to size the default timeout.
    """

    baud: int = PydanticField(default=19200, gt=0)
    parity: Literal["none", "even", "odd"] = "none"
    data_bits: Literal[7, 8] = 8
    stop_bits: Literal[1, 2] = 1


class ModbusSourceConfig(StrictModel):
    """Config of a modbus source: one connection, one or more units behind it."""

    type: Literal["modbus"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
    url: str
    device_id: int = PydanticField(default=1, ge=0, le=255)
    serial: SerialConfig = PydanticField(default_factory=SerialConfig)
    timeout: Annotated[Duration, PydanticField(gt=0)] | None = None
    retries: int = PydanticField(default=0, ge=0, le=10)
    pause: Duration = 0.0
    register_gap: int = PydanticField(default=10, ge=0, le=124)
    bit_gap: int = PydanticField(default=100, ge=0, le=1999)
    max_registers: int = PydanticField(default=125, ge=1, le=125)
    max_bits: int = PydanticField(default=2000, ge=1, le=2000)
    backoff: Annotated[Duration, PydanticField(gt=0)] = 1.0
    backoff_max: Duration = 60.0
    refused_retry: Annotated[Duration, PydanticField(gt=0)] = 600.0
    registers: RegisterList = PydanticField(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        Endpoint.parse(url)
        return url

    @model_validator(mode="after")
    def _signals(self) -> Self:
        if self.backoff_max < self.backoff:
            raise ValueError("backoff_max must be at least backoff")
        seen: set[str] = set()
        for register in self.registers:
            name = register.name.lower()
            if name in seen:
                raise ValueError(f"register name {register.name!r} is used twice")
            seen.add(name)
            if register.interval is not None and register.interval < self.interval:
                raise ValueError(
                    f"register {register.name!r}: interval is shorter than the source's"
                    f" interval ({self.interval} s), which is how often it polls"
                )
        return self

    def units(self) -> list[int]:
        """The device ids (unit ids) the registers are read from, sorted."""
        registers = self.registers
        alike = registers.shapes if isinstance(registers, RegisterTable) else registers
        return sorted({self.device_id if r.device_id is None else r.device_id for r in alike})

    def compact(self) -> None:
        """Keep the registers as a :class:`RegisterTable` (for the agent's process).

        Done once, on the config the child hands to the agent (``config_fork``):
        the model is frozen, so replacing the container of a field by an equal,
        read-only one changes nothing anyone can see but the memory it takes.
        """
        object.__setattr__(self, "registers", RegisterTable.of(self.registers))

    @property
    def request_timeout(self) -> float:
        """``timeout``, or the default that lets every unit time out within one tick.

        The default is ``interval / (units x (retries + 1))``, at most 1 s, and at
        least 100 ms plus the time the largest request and reply take on the
        serial line (every scheme but ``tcp``), so a device that answers is not
        cut off mid-reply.
        """
        if self.timeout is not None:
            return self.timeout
        share = self.interval / (len(self.units()) * (self.retries + 1))
        return max(min(share, _TIMEOUT_MOST), _TIMEOUT_LEAST + self._wire_time())

    def _wire_time(self) -> float:
        """Seconds the longest request and reply allowed take on the serial line."""
        framing = Endpoint.parse(self.url).framing
        if framing == "socket":
            return 0.0
        line = self.serial
        char = 1 + line.data_bits + (line.parity != "none") + line.stop_bits
        payload = max(2 * self.max_registers, math.ceil(self.max_bits / 8))
        if framing == "ascii":
            chars = _ASCII_REQUEST + _ASCII_REPLY_OVERHEAD + 2 * payload
        else:
            chars = _RTU_REQUEST + _RTU_REPLY_OVERHEAD + payload
        return chars * char / line.baud

    def warnings(self) -> list[str]:
        """What ``check-config`` should say about this source although it loads."""
        units = len(self.units())
        worst = self.request_timeout * (self.retries + 1)
        if worst * units <= self.interval:
            return []
        return [
            f"{self.name}: timeout {self.request_timeout:g} s x (retries {self.retries} + 1)"
            f" x {units} unit(s) = {worst * units:g} s exceeds the interval"
            f" ({self.interval:g} s): units that go silent together cannot all be"
            " tried within one tick, so readings of the others come a tick late or are"
            " lost; lower timeout or retries, or raise interval"
        ]

    def signal_name(self, register: ModbusRegisterConfig) -> str:
        """The signal name of ``register``: ``source.name``, lowercase."""
        return f"{self.name}.{register.name}".lower()

    def signal_names(self) -> list[str]:
        """Every signal of the source, without building it (the config's own checks)."""
        registers = self.registers
        rows = registers.rows() if isinstance(registers, RegisterTable) else registers
        return [f"{self.name}.{row.name}".lower() for row in rows]  # signal_name, per row
