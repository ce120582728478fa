"""Round trips for every Modbus type and byte/word order: encoded with struct, decoded with ours."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.modbus.codec import (
    BYTE_ORDERS,
    Field,
    Slot,
    Slots,
    decode,
    decode_bits,
    decode_registers,
    good_sample,
    register_count,
)
from edge_agent.types import Quality, Sample

FORMATS = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
VALUES = {
    "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "float32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
}


def encode(value: float, data_type: str, order: str) -> list[int]:
    """What a device with this byte/word order puts in its registers."""
    raw = struct.pack(">" + FORMATS[data_type], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def expected(value: float, data_type: str) -> float:
    if data_type == "float32":
        return float(struct.unpack(">f", struct.pack(">f", value))[0])
    return float(value)


@pytest.mark.parametrize("order", BYTE_ORDERS)
@pytest.mark.parametrize("data_type", list(FORMATS))
@given(data=st.data())
def test_round_trip_every_type_and_order(data: st.DataObject, data_type: str, order: str) -> None:
    value = data.draw(VALUES[data_type])
    registers = encode(value, data_type, order)
    assert len(registers) == register_count(data_type)  # type: ignore[arg-type]
    assert decode(registers, data_type, order) == expected(value, data_type)  # type: ignore[arg-type]


def test_orders_named_as_in_device_manuals() -> None:
    # 0x41200000 is 10.0 as float32: bytes A=41 B=20 C=00 D=00
    assert decode([0x4120, 0x0000], "float32", "ABCD") == 10.0
    assert decode([0x2041, 0x0000], "float32", "BADC") == 10.0
    assert decode([0x0000, 0x4120], "float32", "CDAB") == 10.0
    assert decode([0x0000, 0x2041], "float32", "DCBA") == 10.0


def test_decode_rejects_short_input() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], "int32")


@given(
    values=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20),
    order=st.sampled_from(BYTE_ORDERS),
    scale=st.sampled_from([1.0, 0.1, -2.5]),
    offset=st.sampled_from([0.0, 100.0]),
)
def test_block_decode_places_values_and_scales(
    values: list[int], order: str, scale: float, offset: float
) -> None:
    registers = [0xBEEF]  # a filler register before the first value
    slots = []
    for i, value in enumerate(values):
        field = Field(f"s.v{i}", "int32", order, None, scale, offset)  # type: ignore[arg-type]
        slots.append(Slot.place(field, len(registers)))
        registers += encode(value, "int32", order)
    samples = decode_registers(slots, registers, 5.0)
    assert [s.value for s in samples] == [v * scale + offset for v in values]
    assert {s.quality for s in samples} == {Quality.GOOD}
    assert [s.signal for s in samples] == [f"s.v{i}" for i in range(len(values))]


@pytest.mark.parametrize("bit", range(16))
def test_bit_inside_a_register(bit: int) -> None:
    field = Field("s.flag", "bool", bit=bit)
    set_only = decode_registers([Slot.place(field, 0)], [1 << bit], 0.0)
    all_but = decode_registers([Slot.place(field, 0)], [0xFFFF ^ (1 << bit)], 0.0)
    assert (set_only[0].value, all_but[0].value) == (1.0, 0.0)


def test_non_finite_float_is_bad() -> None:
    field = Field("s.f", "float32")
    nan = encode(math.nan, "float32", "ABCD")
    inf = encode(math.inf, "float32", "ABCD")
    samples = decode_registers([Slot.place(field, 0), Slot.place(field, 2)], nan + inf, 1.0)
    assert [s.quality for s in samples] == [Quality.BAD, Quality.BAD]
    assert [s.value for s in samples] == [None, None]


def test_bits_decode() -> None:
    slots = [Slot.place(Field(f"s.c{i}", "bool"), i) for i in (0, 3)]
    samples = decode_bits(slots, [True, False, False, False], 2.0)
    assert [s.value for s in samples] == [1.0, 0.0]


def test_fast_good_samples_equal_plain_ones() -> None:
    fast = good_sample("s.x", 12.5, -3.25)
    plain = Sample("s.x", 12.5, -3.25, Quality.GOOD)
    assert type(fast) is Sample
    assert (fast, hash(fast), repr(fast)) == (plain, hash(plain), repr(plain))


@given(
    data_type=st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64"]),
    order=st.sampled_from(BYTE_ORDERS),
    raws=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=60),
    gap=st.booleans(),
    scaled=st.booleans(),
)
def test_a_block_decoded_in_one_unpack_equals_slot_by_slot(
    data_type: str, order: str, raws: list[int], gap: bool, scaled: bool
) -> None:
    # Random registers hold NaNs and infinities too: the one-unpack path must give way.
    width = register_count(data_type)  # type: ignore[arg-type]
    count = len(raws) // width or 1
    registers = (raws * 2 * width)[: (count + int(gap)) * width]
    slots = [
        Slot.place(
            Field(f"s.v{i}", data_type, order, None, 2.0 if scaled and i == 0 else 1.0),  # type: ignore[arg-type]
            i * width + (width if gap and i == count - 1 else 0),
        )
        for i in range(count)
    ]
    block = Slots.of(slots)
    if not scaled and not gap and (data_type != "uint16" or order not in ("ABCD", "CDAB")):
        assert block.run is not None
    expected = decode_registers(slots, registers, 3.0)
    got = decode_registers(block, registers, 3.0)
    assert got == expected or all(  # NaN != NaN: compare BAD and values apart
        (a.signal, a.quality) == (b.signal, b.quality) for a, b in zip(got, expected, strict=True)
    )
    assert [type(s.value) for s in got] == [type(s.value) for s in expected]


def test_a_shared_field_places_slots_for_each_signal() -> None:
    shared = Field("", "float32", "CDAB", scale=0.5, offset=1.0)
    for name in ("a.x", "a.y"):
        own = Field(name, "float32", "CDAB", scale=0.5, offset=1.0)
        assert Slot.place(shared, 4, name) == Slot.place(own, 4)
    assert Slot.place(Field("a.z", "uint16"), 1, "a.w").signal == "a.w"


def test_slots_of_one_type_share_one_unpack_method() -> None:
    # A bound method per slot cost 72 bytes per signal in the running agent.
    a, b = (Slot.place(Field(f"s.{n}", "float32", "CDAB"), i) for n, i in (("a", 0), ("b", 4)))
    assert a.unpack is b.unpack
    assert Slot.place(Field("s.c", "float32"), 0).unpack is not a.unpack  # another order
