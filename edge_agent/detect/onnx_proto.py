"""The protobuf wire format, as far as ONNX files need it, and onnx.proto's field table.

A protobuf message is a run of fields, each a key (field number and wire type)
then a varint, a 64-bit or 32-bit little-endian value, or a length-prefixed
blob (a string, bytes, a packed list or a sub-message). :func:`check_message`
walks a whole ``ModelProto`` against :data:`SCHEMA` (the field numbers and types
of the public ``onnx.proto``) before anything is decoded, and refuses what
protobuf would refuse and what the numpy engine does not read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class NotForNumpy(Exception):
    """The file is malformed, or uses something the numpy engine does not run exactly."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise NotForNumpy("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise NotForNumpy("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field of one message.

    Raises:
        NotForNumpy: a truncated field, a group (wire types 3/4) or field number 0.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise NotForNumpy("field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > end:
                raise NotForNumpy("truncated fixed-size field")
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise NotForNumpy("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise NotForNumpy(f"unsupported wire type {wire}")
        yield number, wire, value


def as_signed(value: int) -> int:
    """An int64/int32 varint as a signed number (negatives are 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise NotForNumpy("a string field has a numeric wire type")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotForNumpy(f"a string field is not UTF-8 ({exc})") from exc


def as_blob(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise NotForNumpy("a message field has a numeric wire type")
    return value


def as_int(value: int | bytes) -> int:
    if isinstance(value, bytes):
        raise NotForNumpy("a numeric field is length-delimited")
    return value


def int_list(wire: int, value: int | bytes) -> list[int]:
    """A repeated int64/int32 field: packed (one LEN field) or one varint."""
    if wire == LEN:
        out, pos, buf = [], 0, as_blob(value)
        while pos < len(buf):
            item, pos = _varint(buf, pos)
            out.append(as_signed(item))
        return out
    if wire != VARINT:
        raise NotForNumpy("an integer list has a fixed-size wire type")
    return [as_signed(as_int(value))]


def float_list(wire: int, value: int | bytes, fmt: str) -> list[float]:
    """A repeated float ("f", fixed32) or double ("d", fixed64) field, packed or not."""
    size = struct.calcsize("<" + fmt)
    if wire == LEN:
        buf = as_blob(value)
        if len(buf) % size:
            raise NotForNumpy("a packed float list has a partial element")
        return list(struct.unpack(f"<{len(buf) // size}{fmt}", buf))
    if wire != (FIXED32 if size == 4 else FIXED64):
        raise NotForNumpy("a float list has the wrong wire type")
    return list(struct.unpack("<" + fmt, as_int(value).to_bytes(size, "little")))


def entry(buf: bytes) -> tuple[str, str]:
    """A StringStringEntryProto: (key, value)."""
    key = text = ""
    for number, _, value in fields(buf):
        if number == 1:
            key = as_text(value)
        elif number == 2:
            text = as_text(value)
    return key, text


# Every field of the messages read here (onnx.proto), for :func:`check_message`. Codes:
# "i" varint, "f" float, "d" double, "s" UTF-8 string, "b" bytes, a capitalised name
# a sub-message; "*" repeated. A field number not listed is refused, so this reader
# never accepts a file that protobuf itself would reject.
SCHEMA: dict[str, dict[int, str]] = {
    "Model": {
        1: "i",
        2: "s",
        3: "s",
        4: "s",
        5: "i",
        6: "s",
        7: "Graph",
        8: "*OpsetId",
        14: "*Entry",
        26: "*DeviceConfig",
    },
    "OpsetId": {1: "s", 2: "i"},
    "Entry": {1: "s", 2: "s"},
    "DeviceConfig": {1: "s", 2: "i", 3: "*s"},
    "Graph": {
        1: "*Node",
        2: "s",
        5: "*Tensor",
        10: "s",
        11: "*ValueInfo",
        12: "*ValueInfo",
        13: "*ValueInfo",
        14: "*Annotation",
        16: "*Entry",
    },
    "Annotation": {1: "s", 2: "*Entry"},
    "Node": {
        1: "*s",
        2: "*s",
        3: "s",
        4: "s",
        5: "*Attribute",
        6: "s",
        7: "s",
        8: "s",
        9: "*Entry",
    },
    "Attribute": {1: "s", 2: "f", 3: "i", 4: "b", 5: "Tensor", 7: "*f", 8: "*i", 13: "s", 20: "i"},
    "ValueInfo": {1: "s", 2: "Type", 3: "s", 4: "*Entry"},
    "Type": {1: "TensorType", 6: "s"},
    "TensorType": {1: "i", 2: "Shape"},
    "Shape": {1: "*Dim"},
    "Dim": {1: "i", 2: "s", 3: "s"},
    "Tensor": {
        1: "*i",
        2: "i",
        4: "*f",
        5: "*i",
        7: "*i",
        8: "s",
        9: "b",
        10: "*d",
        11: "*i",
        12: "s",
        14: "i",
        16: "*Entry",
    },
}
_WIRE = {"i": VARINT, "f": FIXED32, "d": FIXED64, "s": LEN, "b": LEN}


def check_message(buf: bytes, name: str = "Model") -> None:
    """Check a message against :data:`SCHEMA`, recursively.

    Raises:
        NotForNumpy: a field not in the schema (or one this engine does not read:
            subgraphs, sparse and external tensors, functions), a wrong wire type,
            a repeated singular message, or a string that is not UTF-8.
    """
    schema = SCHEMA[name]
    seen: set[int] = set()
    for number, wire, value in fields(buf):
        code = schema.get(number)
        if code is None:
            raise NotForNumpy(f"{name} field {number} is not read by the numpy engine")
        repeated, kind = code.startswith("*"), code.lstrip("*")
        if not repeated and number in seen and kind[0].isupper():
            raise NotForNumpy(f"{name} field {number} given twice")
        seen.add(number)
        if kind[0].isupper():
            if wire != LEN:
                raise NotForNumpy(f"{name} field {number}: wrong wire type {wire}")
            check_message(as_blob(value), kind)
        elif wire != _WIRE[kind] and not (repeated and wire == LEN and kind in "ifd"):
            raise NotForNumpy(f"{name} field {number}: wrong wire type {wire}")
        elif kind == "s":
            as_text(value)
        elif repeated and wire == LEN and kind == "i":
            int_list(wire, value)
        elif repeated and wire == LEN:
            float_list(wire, value, kind)
