"""One Modbus connection (TCP; RTU or ASCII on a serial port or over TCP) and its reads.

The only module that talks to pymodbus's client. It translates the library's
outcomes once: data comes back as a list, a Modbus exception response as a
:class:`Refused`, no answer as :class:`NoAnswer`, and a lost or failed
connection as :class:`SourceError`. Retries are ours (pymodbus is told 0) so a
dead unit costs a known ``timeout * (retries + 1)``; pymodbus's own reconnect
and "close after N silent requests" are switched off because the source decides
what a silent unit means on a shared bus. Every request is counted on its
unit's :class:`~edge_agent.sources.modbus.health.UnitCounts` (in place: plain
integers and the reply's time, nothing built per request).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

from edge_agent.errors import SourceError
from edge_agent.sources.modbus.codec import Table
from edge_agent.sources.modbus.endpoint import Endpoint
from edge_agent.sources.modbus.health import UnitCounts
from edge_agent.sources.modbus.replies import ascii_framer, word_responses

# Modbus exceptions that mean "the unit behind the gateway did not answer":
# treated as silence, not as a refusal (gateway path unavailable / target failed).
_GATEWAY_SILENCE = frozenset({0x0A, 0x0B})


@dataclass(frozen=True, slots=True)
class SerialLine:
    """Serial line settings for ``rtu://`` and ``ascii://`` (a pty refuses parity, 7 bits)."""

    baud: int = 19200
    parity: Literal["none", "even", "odd"] = "none"
    data_bits: Literal[7, 8] = 8
    stop_bits: Literal[1, 2] = 1


@dataclass(frozen=True, slots=True)
class Refused:
    """The device answered with a Modbus exception code."""

    code: int


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """The unit did not answer in time (after retries)."""

    reason: str


Reply = list[int] | list[bool] | Refused | NoAnswer

MALFORMED = -1
"""Refused.code for a reply that does not fit the request (wrong size or function)."""

_FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_READERS = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


class ModbusLink:
    """A connection to one Modbus endpoint: open, read blocks, close.

    A serial line is owned by one link at a time in this process: two sources
    on one RS-485 line would interleave their frames, so the second one is
    refused with a message saying to put every unit of the line in one source.
    """

    _serial_owners: ClassVar[dict[str, str]] = {}  # real device path -> owner's name

    def __init__(
        self,
        endpoint: Endpoint,
        serial: SerialLine,
        timeout: float,
        retries: int,
        name: str = "modbus",
        counts: Mapping[int, UnitCounts] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.serial = serial
        self.timeout = timeout
        self.retries = retries
        self.name = name
        self.counts = counts if counts is not None else {}
        self._spare = UnitCounts()  # for a unit without counts (probe, tests)
        self._client: Any = None
        self._lost = False
        self._busy = False
        self._line = ""

    async def open(self) -> None:
        """Connect.

        Raises:
            SourceError: the endpoint cannot be reached or opened.
        """
        _quiet_pymodbus()
        self._claim_line()
        self._client = self._make_client()
        self._lost = False
        try:
            connected = await self._client.connect()
        except Exception as exc:
            # a serial port raises instead of returning False, and not only OSError:
            # termios.error for settings the port refuses (a pty refuses parity)
            self.close()
            raise SourceError(f"{self.name}: cannot open {self.endpoint}: {exc}") from exc
        if not connected:
            self.close()
            raise SourceError(f"{self.name}: cannot connect to {self.endpoint}")

    def close(self) -> None:
        """Close the connection (idempotent).

        A request still waiting for its reply (a write, when a reload stops the source)
        ends at once as a lost connection, not after its whole timeout.
        """
        if self._client is not None:
            self._on_connect(False)
            self._client.close()
            self._client = None
        if self._line and self._serial_owners.get(self._line) == self.name:
            del self._serial_owners[self._line]
        self._line = ""

    def _claim_line(self) -> None:
        if not self.endpoint.serial_port:
            return
        line = os.path.realpath(self.endpoint.host)
        owner = self._serial_owners.setdefault(line, self.name)
        if owner != self.name:
            raise SourceError(
                f"{self.name}: {self.endpoint} is already polled by source {owner!r}; "
                "put every unit of one serial line in one source"
            )
        self._line = line

    def _make_client(self) -> Any:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        common: dict[str, Any] = {
            "name": self.name,
            "timeout": self.timeout,
            "retries": 0,
            "reconnect_delay": 0,  # the agent's poll loop owns reconnection
            "trace_connect": self._on_connect,
        }
        framer = FramerType(self.endpoint.framing)  # "socket", "rtu", "ascii": its values
        client: Any
        if self.endpoint.serial_port:
            line = self.serial
            client = AsyncModbusSerialClient(
                self.endpoint.host,
                framer=framer,
                baudrate=line.baud,
                parity=line.parity[0].upper(),
                bytesize=line.data_bits,
                stopbits=line.stop_bits,
                **common,
            )
        else:  # tcp, and rtu+tcp or ascii+tcp: a serial device server passes the frames on
            client = AsyncModbusTcpClient(
                self.endpoint.host, port=self.endpoint.port, framer=framer, **common
            )
        if framer is FramerType.ASCII:
            client.ctx.framer = ascii_framer()(client.ctx.framer.decoder)
        client.set_max_no_responses(1 << 30)  # silence is judged per unit by the source
        for response in word_responses():
            client.register(response)  # replaces the stock fc 3 and 4 replies, this client only
        return client

    def _on_connect(self, up: bool) -> None:
        if up:
            return
        self._lost = True
        # pymodbus would wait out the full timeout for a reply that cannot come
        future = getattr(getattr(self._client, "ctx", None), "response_future", None)
        if self._busy and future is not None and not future.done():
            from pymodbus.exceptions import ConnectionException

            future.set_exception(ConnectionException("connection lost"))

    async def read(self, table: Table, unit: int, start: int, count: int) -> Reply:
        """Read ``count`` registers or bits from ``table`` of ``unit``.

        Returns:
            the values, :class:`Refused` or :class:`NoAnswer`.

        Raises:
            SourceError: the connection is lost.
        """
        last = NoAnswer("no answer")
        counts = self.counts.get(unit, self._spare)
        for _ in range(self.retries + 1):
            reply = await self._read_once(table, unit, start, count, counts)
            if not isinstance(reply, NoAnswer):
                return reply
            last = reply
        return last

    async def _read_once(
        self, table: Table, unit: int, start: int, count: int, counts: UnitCounts
    ) -> Reply:
        method = getattr(self._connected(), _READERS[table])
        request = partial(method, start, count=count, device_id=unit)
        response = await self._exchange(request, counts)
        if isinstance(response, NoAnswer):
            return response
        reply = _reply(response, table, count)
        if reply.__class__ is list:
            counts.answers += 1
        else:
            _count_bad(counts, response)
        return reply

    def _connected(self) -> Any:
        """The client, or SourceError when the connection is lost."""
        if self._client is None or self._lost or not self._client.connected:
            raise SourceError(f"{self.name}: connection to {self.endpoint} lost")
        return self._client

    async def _exchange(self, request: Callable[[], Awaitable[Any]], counts: UnitCounts) -> Any:
        """Send one request: its response, NoAnswer on a timeout, SourceError when lost.

        ``request`` is called inside the guard: pymodbus may raise before its first await.
        The request, its outcome and the reply's time go to ``counts``.
        """
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        counts.requests += 1
        self._busy = True
        sent = time.monotonic()
        try:
            response = await request()
        except ConnectionException as exc:
            counts.lost += 1
            raise SourceError(f"{self.name}: connection to {self.endpoint} lost") from exc
        except ModbusIOException as exc:
            if self._lost:
                counts.lost += 1
                raise SourceError(f"{self.name}: connection to {self.endpoint} lost") from exc
            counts.timeouts += 1
            return NoAnswer(str(exc))
        finally:
            self._busy = False
        counts.last_response = took = time.monotonic() - sent
        counts.response_sum += took
        return response

    async def write(
        self, unit: int, function: int, address: int, values: list[int] | list[bool]
    ) -> Reply:
        """Write with function code 5, 6, 15 or 16; no retry (a write is not repeated blindly).

        Returns:
            ``[]`` when the device confirmed, :class:`Refused` or :class:`NoAnswer`.

        Raises:
            SourceError: the connection is lost.
        """
        method, arg = _WRITERS[function]
        client = self._connected()
        value = values[0] if arg == "one" else values
        counts = self.counts.get(unit, self._spare)
        request = partial(getattr(client, method), address, value, device_id=unit)
        response = await self._exchange(request, counts)
        if isinstance(response, NoAnswer):
            return response
        if response.isError() or response.function_code != function:
            _count_bad(counts, response)
            return _refusal(response)
        counts.answers += 1
        return []


_WRITERS = {
    5: ("write_coil", "one"),
    6: ("write_register", "one"),
    15: ("write_coils", "all"),
    16: ("write_registers", "all"),
}


def _refusal(response: Any) -> Reply:
    """What a reply that is not the data asked for means: a refusal, or silence via a gateway."""
    if not response.isError():
        return Refused(MALFORMED)  # an answer to another question: garbage on the line
    code = int(getattr(response, "exception_code", 0))
    return NoAnswer(f"gateway code {code}") if code in _GATEWAY_SILENCE else Refused(code)


def _count_bad(counts: UnitCounts, response: Any) -> None:
    """Count a reply that carries no data: its exception code, or malformed."""
    if response.isError():
        counts.refused(int(getattr(response, "exception_code", 0)))
    else:
        counts.malformed += 1


def _reply(response: Any, table: Table, count: int) -> Reply:
    if response.isError():
        return _refusal(response)
    if response.function_code != _FUNCTION_CODES[table]:
        return Refused(MALFORMED)  # an answer to another question: garbage on the line
    if table in ("coil", "discrete"):
        bits = list(response.bits)
        return bits[:count] if len(bits) >= count else Refused(MALFORMED)
    registers = list(response.registers)
    return registers if len(registers) == count else Refused(MALFORMED)


def _quiet_pymodbus() -> None:
    """Keep pymodbus from logging every timeout: we log transitions ourselves.

    Only when nobody configured its logger (an explicit level wins).
    """
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


async def pause(seconds: float) -> None:
    """Idle the bus between requests (some RS-485 devices need the silence)."""
    if seconds > 0:
        await asyncio.sleep(seconds)
