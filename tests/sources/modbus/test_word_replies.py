"""Register replies decoded in one struct call agree with pymodbus's own decode."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from edge_agent.sources.modbus.replies import word_responses


def stock(data: bytes) -> object:
    pdu = ReadHoldingRegistersResponse()
    pdu.decode(data)
    return pdu.registers


def fast(data: bytes) -> object:
    holding, _ = word_responses()
    pdu = holding()
    pdu.decode(data)
    return pdu.registers


@pytest.mark.parametrize("count", [1, 2, 62, 125])
def test_words_match_pymodbus(count: int) -> None:
    words = [random.Random(count).randrange(65536) for _ in range(count)]
    data = struct.pack(f">B{count}H", 2 * count, *words)
    assert fast(data) == stock(data) == words
    assert fast(data + b"\x00") == words  # trailing bytes beyond the count are ignored, as before


@pytest.mark.parametrize(
    "data", [b"", b"\x04\x00\x01", b"\x03\x00\x01\x02", b"\x05\x00\x01\x00\x02\x09"], ids=repr
)
def test_odd_or_short_replies_end_as_in_pymodbus(data: bytes) -> None:
    assert outcome(fast, data) == outcome(stock, data)


def outcome(decode: Callable[[bytes], object], data: bytes) -> object:
    """The registers, or the type of the error."""
    try:
        return decode(data)
    except (ModbusIOException, IndexError, struct.error) as exc:
        return type(exc)


def test_both_register_tables_are_replaced() -> None:
    assert [r.function_code for r in word_responses()] == [3, 4]


def test_a_reply_reads_short_in_pymodbus_debug_lines() -> None:
    holding, _ = word_responses()
    pdu = holding()
    pdu.decode(struct.pack(">B124H", 248, *range(124)))
    assert str(pdu).endswith("124 registers)")
    assert "123" not in str(pdu)  # the words themselves are not written out
