"""Read the part of an ONNX file (``onnx.proto``) that the numpy engine runs.

An ONNX file is one protobuf ``ModelProto``. This reader decodes the protobuf
wire format itself (varint, 64-bit, length-delimited and 32-bit fields) and keeps
only what :mod:`edge_agent.detect.onnx_small` needs: the IR version, the opset
imports, the metadata (the embedded model card), and of the graph its nodes with
their attributes, its initializers (``raw_data`` or the typed ``*_data`` fields)
and its inputs and outputs with element types and shapes. Field numbers are those
of the public ``onnx.proto``.

Anything this reader cannot represent exactly (external or sparse tensors,
subgraph attributes, non-tensor types, a malformed or truncated message) raises
:class:`NotForNumpy`; the loader then hands the file to onnxruntime, which
decides whether it is a valid model at all. The ``onnx`` package is not needed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

# TensorProto.DataType -> numpy dtype, for the types this reader decodes.
DTYPES: dict[int, np.dtype[np.generic]] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    4: np.dtype("<u2"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("?"),
    11: np.dtype("<f8"),
    12: np.dtype("<u4"),
    13: np.dtype("<u8"),
}
# Which typed field may hold each data type (onnx.proto, TensorProto comments).
_INT32_DATA = {2, 3, 4, 5, 6, 9}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class NotForNumpy(Exception):
    """The file is malformed, or uses something the numpy engine does not run exactly."""


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: name, element type (None: not a tensor) and dims.

    A dim is an int (``dim_value``), a str (``dim_param``) or None (unknown);
    ``dims`` is None when the type has no shape at all.
    """

    name: str
    elem_type: int | None
    dims: tuple[int | str | None, ...] | None


@dataclass(frozen=True)
class Attribute:
    """One node attribute; ``kind`` is AttributeProto.AttributeType."""

    name: str
    kind: int
    value: float | int | bytes | np.ndarray | tuple[float, ...] | tuple[int, ...] | None


@dataclass(frozen=True)
class Node:
    """One node: operator, domain, inputs/outputs ("" is an absent optional input)."""

    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Attribute]


@dataclass
class Graph:
    """The main graph: nodes in file order, initializers by name, declared values."""

    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    value_info: list[ValueInfo] = field(default_factory=list)


@dataclass
class Model:
    """A ModelProto: IR version, opset per domain, graph, metadata_props."""

    ir_version: int = 0
    opsets: dict[str, int] = field(default_factory=dict)
    graph: Graph | None = None
    metadata: dict[str, str] = field(default_factory=dict)


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


def _signed(value: int) -> int:
    """An int64/int32 varint as a signed number (negatives are 10-byte varints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise NotForNumpy("a string field has a numeric wire type")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotForNumpy(f"a string field is not UTF-8 ({exc})") from exc


def _blob(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise NotForNumpy("a message field has a numeric wire type")
    return value


def _number(value: int | bytes) -> int:
    if isinstance(value, bytes):
        raise NotForNumpy("a numeric field is length-delimited")
    return value


def _ints(wire: int, value: int | bytes) -> list[int]:
    """A repeated int64/int32 field: packed (one LEN field) or one varint."""
    if wire == LEN:
        out, pos, buf = [], 0, _blob(value)
        while pos < len(buf):
            item, pos = _varint(buf, pos)
            out.append(_signed(item))
        return out
    if wire != VARINT:
        raise NotForNumpy("an integer list has a fixed-size wire type")
    return [_signed(_number(value))]


def _fixed(wire: int, value: int | bytes, fmt: str) -> list[float]:
    """A repeated float ("f", fixed32) or double ("d", fixed64) field, packed or not."""
    size = struct.calcsize("<" + fmt)
    if wire == LEN:
        buf = _blob(value)
        if len(buf) % size:
            raise NotForNumpy("a packed float list has a partial element")
        return list(struct.unpack(f"<{len(buf) // size}{fmt}", buf))
    if wire != (FIXED32 if size == 4 else FIXED64):
        raise NotForNumpy("a float list has the wrong wire type")
    return list(struct.unpack("<" + fmt, _number(value).to_bytes(size, "little")))


def _pairs(buf: bytes) -> tuple[str, str]:
    """A StringStringEntryProto: (key, value)."""
    key = text = ""
    for number, _, value in fields(buf):
        if number == 1:
            key = _text(value)
        elif number == 2:
            text = _text(value)
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
            check_message(_blob(value), kind)
        elif wire != _WIRE[kind] and not (repeated and wire == LEN and kind in "ifd"):
            raise NotForNumpy(f"{name} field {number}: wrong wire type {wire}")
        elif kind == "s":
            _text(value)
        elif repeated and wire == LEN and kind == "i":
            _ints(wire, value)
        elif repeated and wire == LEN:
            _fixed(wire, value, kind)


class _TensorParts:
    """The fields of one TensorProto as read, before they become an array."""

    def __init__(self) -> None:
        self.name = ""
        self.dims: list[int] = []
        self.data_type = 0
        self.raw: bytes | None = None
        self.typed: list[Any] = []
        self.typed_field = 0

    def add(self, number: int, wire: int, value: int | bytes) -> None:
        if number == 1:
            self.dims.extend(_ints(wire, value))
        elif number == 2:
            self.data_type = _number(value)
        elif number == 8:
            self.name = _text(value)
        elif number == 9:
            self.raw = _blob(value)
        elif number in (4, 10):
            self._typed(number, _fixed(wire, value, "f" if number == 4 else "d"))
        elif number in (5, 7, 11):
            items = _ints(wire, value)
            # uint64_data is unsigned: undo the int64 reading of large values.
            self._typed(number, [i & ((1 << 64) - 1) for i in items] if number == 11 else items)
        elif number in (3, 6, 13):
            raise NotForNumpy("segmented, string or external tensor data")
        elif number == 14 and _number(value) == _EXTERNAL:
            raise NotForNumpy("external tensor data")

    def _typed(self, number: int, items: list[float] | list[int]) -> None:
        if self.typed_field not in (0, number):
            raise NotForNumpy("a tensor has two typed data fields")
        self.typed_field = number
        self.typed.extend(items)

    def array(self) -> np.ndarray:
        dtype = DTYPES.get(self.data_type)
        if dtype is None:
            raise NotForNumpy(f"tensor {self.name!r} has data type {self.data_type}")
        if any(d < 0 for d in self.dims):
            raise NotForNumpy(f"tensor {self.name!r} has a negative dim")
        count = int(np.prod(self.dims, dtype=np.int64))
        if self.raw is not None:
            if self.typed_field or len(self.raw) != count * dtype.itemsize:
                raise NotForNumpy(f"tensor {self.name!r}: raw_data does not match its dims")
            flat = np.frombuffer(self.raw, dtype=dtype).astype(dtype.newbyteorder("="))
        else:
            flat = self._from_typed(dtype, count)
        return flat.reshape(self.dims)

    def _from_typed(self, dtype: np.dtype[np.generic], count: int) -> np.ndarray:
        allowed = {
            4: {1},
            5: _INT32_DATA,
            7: {7},
            10: {11},
            11: {12, 13},
        }
        if count and self.data_type not in allowed.get(self.typed_field, set()):
            raise NotForNumpy(f"tensor {self.name!r}: no data for its type")
        if len(self.typed) != count:
            raise NotForNumpy(f"tensor {self.name!r}: {len(self.typed)} values for {count}")
        wide = np.array(self.typed, dtype=np.float64 if self.typed_field in (4, 10) else object)
        if dtype.kind in "iub" and wide.size:
            info = np.iinfo(dtype.str) if dtype.kind != "b" else None
            lo, hi = (info.min, info.max) if info else (0, 1)
            if min(self.typed) < lo or max(self.typed) > hi:
                raise NotForNumpy(f"tensor {self.name!r}: a value out of range of its type")
        return wide.astype(dtype.newbyteorder("="))


def tensor(buf: bytes) -> tuple[str, np.ndarray]:
    """A TensorProto as ``(name, array)``."""
    parts = _TensorParts()
    for number, wire, value in fields(buf):
        parts.add(number, wire, value)
    return parts.name, parts.array()


def _dims(buf: bytes) -> tuple[int | str | None, ...]:
    """A TensorShapeProto's dims."""
    dims: list[int | str | None] = []
    for number, _, value in fields(buf):
        if number != 1:
            continue
        dim: int | str | None = None
        for inner, _, item in fields(_blob(value)):
            if inner == 1:
                dim = _signed(_number(item))
            elif inner == 2:
                dim = _text(item)
        dims.append(dim)
    return tuple(dims)


def value_info(buf: bytes) -> ValueInfo:
    """A ValueInfoProto; a non-tensor type gives ``elem_type`` None."""
    name, elem, dims, is_tensor = "", None, None, False
    for number, _, value in fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            for inner, _, item in fields(_blob(value)):
                if inner == 1:  # TypeProto.tensor_type
                    is_tensor = True
                    for t_field, _, t_value in fields(_blob(item)):
                        if t_field == 1:
                            elem = _number(t_value)
                        elif t_field == 2:
                            dims = _dims(_blob(t_value))
    return ValueInfo(name, elem if is_tensor else None, dims)


def attribute(buf: bytes) -> Attribute:
    """An AttributeProto; graphs, sparse tensors and type protos are refused."""
    name, kind = "", 0
    value: float | int | bytes | np.ndarray | tuple[float, ...] | tuple[int, ...] | None = None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, item in fields(buf):
        if number == 1:
            name = _text(item)
        elif number == 20:
            kind = _number(item)
        elif number == 2:
            value = _fixed(wire, item, "f")[0]
        elif number == 3:
            value = _signed(_number(item))
        elif number == 4:
            value = _blob(item)
        elif number == 5:
            value = tensor(_blob(item))[1]
        elif number == 7:
            floats.extend(_fixed(wire, item, "f"))
        elif number == 8:
            ints.extend(_ints(wire, item))
        elif number in (6, 9, 10, 11, 14, 15, 21, 22, 23):
            raise NotForNumpy(f"attribute {name or '?'}: graphs, string lists or references")
    if kind == 6:
        value = tuple(floats)
    elif kind == 7:
        value = tuple(ints)
    return Attribute(name, kind, value)


def node(buf: bytes) -> Node:
    """A NodeProto."""
    inputs: list[str] = []
    outputs: list[str] = []
    op_type = domain = ""
    attrs: dict[str, Attribute] = {}
    for number, _, value in fields(buf):
        if number == 1:
            inputs.append(_text(value))
        elif number == 2:
            outputs.append(_text(value))
        elif number == 4:
            op_type = _text(value)
        elif number == 7:
            domain = _text(value)
        elif number == 5:
            attr = attribute(_blob(value))
            if attr.name in attrs:
                raise NotForNumpy(f"{op_type}: attribute {attr.name!r} given twice")
            attrs[attr.name] = attr
    return Node(op_type, domain, tuple(inputs), tuple(outputs), attrs)


def graph(buf: bytes) -> Graph:
    """A GraphProto; sparse initializers are refused."""
    out = Graph()
    for number, _, value in fields(buf):
        if number == 1:
            out.nodes.append(node(_blob(value)))
        elif number == 5:
            name, array = tensor(_blob(value))
            if name in out.initializers:
                raise NotForNumpy(f"initializer {name!r} given twice")
            out.initializers[name] = array
        elif number == 11:
            out.inputs.append(value_info(_blob(value)))
        elif number == 12:
            out.outputs.append(value_info(_blob(value)))
        elif number == 13:
            out.value_info.append(value_info(_blob(value)))
        elif number == 15:
            raise NotForNumpy("sparse initializers")
    return out


def read_model(data: bytes) -> Model:
    """Decode a ModelProto.

    Raises:
        NotForNumpy: malformed, truncated, or using a feature outside this subset
            (functions, training info, a second graph field).
    """
    check_message(data)
    model = Model()
    for number, _, value in fields(data):
        if number == 1:
            model.ir_version = _signed(_number(value))
        elif number == 7:
            if model.graph is not None:
                raise NotForNumpy("two graph fields")
            model.graph = graph(_blob(value))
        elif number == 8:
            domain, version = "", 0
            for inner, _, item in fields(_blob(value)):
                if inner == 1:
                    domain = _text(item)
                elif inner == 2:
                    version = _signed(_number(item))
            model.opsets[domain] = version
        elif number == 14:
            key, text = _pairs(_blob(value))
            model.metadata[key] = text
        elif number in (20, 25):
            raise NotForNumpy("training info or model-local functions")
    return model
