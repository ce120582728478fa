"""Writing one signal to a Modbus device: encode, write (FC5/6/15/16), read back.

The value in engineering units becomes the raw value (``(value - offset) / scale``),
which must fit the register's type exactly (an integer type takes whole numbers only),
then registers in the configured byte order: the exact inverse of
:mod:`edge_agent.sources.modbus.codec`. What the device should now hold is those
registers decoded again (a float32 rounds), and is compared with a read of the same
registers after the write.

Polling is not stalled: the write and the read-back are separate turns of the
source's request lock, which the poll takes for a whole tick, so a tick waits for at
most one write request, and a write waits for at most the tick in progress.
"""

from __future__ import annotations

import asyncio
import math
import struct

from edge_agent.errors import WriteError
from edge_agent.sources.modbus.codec import Field, decode_exact, needs_swapped, register_count
from edge_agent.sources.modbus.link import ModbusLink, NoAnswer, Refused, Reply
from edge_agent.sources.modbus.registers import ModbusRegisterConfig
from edge_agent.types import ReadBack

Words = list[int] | list[bool]

_INTEGERS = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})


def encode(register: ModbusRegisterConfig, value: float | int | bool) -> Words:
    """The registers (or the coil) that hold ``value``.

    Raises:
        ValueError: the type cannot hold the value (nothing may be sent).
    """
    if register.data_type == "bool":
        return [bool(value)]
    raw = (float(value) - register.offset) / register.scale
    number: int | float = raw
    if register.data_type in _INTEGERS:
        number = round(raw)
        if not math.isfinite(raw) or abs(raw - number) > 1e-9 * max(1.0, abs(raw)):
            raise ValueError(
                f"{value!r} is not a whole number of {register.data_type} steps"
                f" (scale {register.scale:g}, offset {register.offset:g})"
            )
    field = Field("", register.data_type, register.byte_order)
    try:
        data = field.unpacker().pack(number)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{value!r} does not fit a {register.data_type}: {exc}") from None
    count = register_count(register.data_type)
    words = struct.unpack(("<" if needs_swapped(register.byte_order) else ">") + f"{count}H", data)
    return list(words)


def decode(register: ModbusRegisterConfig, words: Words) -> float:
    """The value in engineering units that ``words`` stand for."""
    if register.data_type == "bool":
        return float(bool(words[0]))
    raw = decode_exact([int(w) for w in words], register.data_type, register.byte_order)
    return float(raw) * register.scale + register.offset


async def write_value(
    link: ModbusLink, turn: asyncio.Lock, register: ModbusRegisterConfig, unit: int,
    value: float | int | bool,
) -> ReadBack:  # fmt: skip
    """Write ``value`` to ``register`` of ``unit`` and read it back.

    Raises:
        ValueError: the register's type cannot hold the value (nothing sent).
        WriteError: the device refused the write or the read, or did not answer.
        SourceError: the connection is lost.
    """
    words = encode(register, value)
    expected = decode(register, words)
    async with turn:
        _check(await link.write(unit, register.function, register.address, words), "write")
    async with turn:
        back = await link.read(register.table, unit, register.address, register.width)
    return ReadBack(expected, decode(register, _check(back, "read back")))


def _check(reply: Reply, what: str) -> Words:
    if isinstance(reply, Refused):
        code = "a malformed reply" if reply.code < 0 else f"Modbus exception {reply.code}"
        raise WriteError(f"device refused the {what} ({code})")
    if isinstance(reply, NoAnswer):
        raise WriteError(f"no answer to the {what}: {reply.reason}")
    return reply
