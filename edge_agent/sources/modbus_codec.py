"""Modbus value types and byte/word orders: registers in, numbers out.

Device manuals name the order of a multi-register value by the letters of its
bytes as they appear on the wire, ``A`` being the most significant byte:

* ``ABCD``: big-endian, the Modbus default.
* ``DCBA``: little-endian.
* ``BADC``: the bytes inside each register swapped.
* ``CDAB``: the registers in reverse order ("word swap").

For 64-bit values the same names apply word by word (``CDAB`` reverses all four
registers). One trick decodes all four orders with :mod:`struct` and no loops:
a block's registers are packed once big-endian and, if needed, once with the
bytes of each register swapped; then ``ABCD`` is a big-endian read of the
first buffer, ``DCBA`` a little-endian read of it, ``BADC`` a big-endian read
of the swapped buffer and ``CDAB`` a little-endian read of the swapped buffer.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from edge_agent.types import Quality, Sample

DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]
ByteOrder = Literal["ABCD", "BADC", "CDAB", "DCBA"]
Table = Literal["coil", "discrete", "holding", "input"]

DATA_TYPES: tuple[DataType, ...] = get_args(DataType)
BYTE_ORDERS: tuple[ByteOrder, ...] = get_args(ByteOrder)
BIT_TABLES: frozenset[Table] = frozenset({"coil", "discrete"})

# struct letter and register count of each numeric type
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}
_PACKERS: dict[tuple[str, int], struct.Struct] = {}


def register_count(data_type: DataType) -> int:
    """How many 16-bit registers a value of ``data_type`` occupies."""
    return 1 if data_type == "bool" else _FORMATS[data_type][1]


def _packer(endian: str, count: int) -> struct.Struct:
    key = (endian, count)
    packer = _PACKERS.get(key)
    if packer is None:
        packer = _PACKERS[key] = struct.Struct(f"{endian}{count}H")
    return packer


def pack_block(registers: Sequence[int], swapped: bool) -> bytes:
    """Registers as bytes, big-endian per register, or byte-swapped per register."""
    return _packer("<" if swapped else ">", len(registers)).pack(*registers)


def needs_swapped(order: ByteOrder) -> bool:
    """Whether ``order`` is read from the byte-swapped buffer (see module doc)."""
    return order in ("BADC", "CDAB")


@dataclass(frozen=True, slots=True)
class Field:
    """How to turn the registers (or bits) of a block into one signal's value.

    Attributes:
        signal: the signal name (``source.name``, lowercase).
        data_type: the value type on the device.
        order: byte/word order for multi-byte register values.
        bit: bit number (0 = least significant) for ``bool`` in a register.
        scale: value = raw * scale + offset.
        offset: see ``scale``.
    """

    signal: str
    data_type: DataType
    order: ByteOrder = "ABCD"
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0

    def unpacker(self) -> struct.Struct:
        """The struct that reads the raw value from a packed block."""
        letter = _FORMATS[self.data_type][0]
        little = self.order in ("DCBA", "CDAB")
        return struct.Struct(("<" if little else ">") + letter)


def decode(registers: Sequence[int], data_type: DataType, order: ByteOrder = "ABCD") -> float:
    """Decode one value from its registers (``bool`` reads bit 0 of the first).

    Raises:
        ValueError: too few registers, or a register outside 0..65535.
    """
    return float(decode_exact(registers, data_type, order))


def decode_exact(
    registers: Sequence[int], data_type: DataType, order: ByteOrder = "ABCD"
) -> int | float:
    """Like :func:`decode`, but 64-bit integers stay exact ints."""
    count = register_count(data_type)
    if len(registers) < count:
        raise ValueError(f"{data_type} needs {count} registers, got {len(registers)}")
    if data_type == "bool":
        return registers[0] & 1
    field = Field("", data_type, order)
    try:
        buffer = pack_block(registers[:count], needs_swapped(order))
    except struct.error as exc:
        raise ValueError(f"registers must be 0..65535: {list(registers)}") from exc
    value: int | float = field.unpacker().unpack_from(buffer, 0)[0]
    return value


def scaled(raw: float, scale: float, offset: float) -> float | None:
    """``raw * scale + offset``, or None when the result is not a finite number."""
    value = raw * scale + offset
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Slot:
    """A field placed in a block: where its value starts, relative to the block.

    Attributes:
        field: what to decode.
        index: register (or bit) index of the value inside the block.
        unpacker: reads the raw number; None for bits and bits in a register.
        swapped: whether to read from the byte-swapped buffer.
    """

    field: Field
    index: int
    unpacker: struct.Struct | None
    swapped: bool

    @classmethod
    def place(cls, field: Field, index: int) -> Slot:
        """Place ``field`` at ``index`` of a block."""
        if field.data_type == "bool":
            return cls(field, index, None, False)
        return cls(field, index, field.unpacker(), needs_swapped(field.order))


def decode_registers(slots: Sequence[Slot], registers: Sequence[int], ts: float) -> list[Sample]:
    """Decode every slot of a register block into samples (non-finite -> BAD)."""
    plain = swapped = b""
    out: list[Sample] = []
    for slot in slots:
        field = slot.field
        if slot.unpacker is None:
            raw: float = (registers[slot.index] >> (field.bit or 0)) & 1
        elif slot.swapped:
            swapped = swapped or pack_block(registers, True)
            raw = slot.unpacker.unpack_from(swapped, slot.index * 2)[0]
        else:
            plain = plain or pack_block(registers, False)
            raw = slot.unpacker.unpack_from(plain, slot.index * 2)[0]
        value = raw * field.scale + field.offset
        if math.isfinite(value):
            out.append(Sample(field.signal, ts, value, Quality.GOOD))
        else:
            out.append(Sample.bad(field.signal, ts))
    return out


def decode_bits(slots: Sequence[Slot], bits: Sequence[bool], ts: float) -> list[Sample]:
    """Decode every slot of a coil or discrete-input block into samples."""
    return [
        Sample(s.field.signal, ts, bits[s.index] * s.field.scale + s.field.offset, Quality.GOOD)
        for s in slots
    ]
