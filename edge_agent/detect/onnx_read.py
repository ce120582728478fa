"""Read the part of an ONNX file (``onnx.proto``) that the numpy engine runs.

An ONNX file is one protobuf ``ModelProto``. Once
:func:`~edge_agent.detect.onnx_proto.check_message` has checked it against the
field table of ``onnx.proto``, this reader decodes it and keeps only what
:mod:`edge_agent.detect.onnx_small` needs: the IR version, the opset imports, the
metadata (the embedded model card), and of the graph its nodes with their
attributes, its initializers (``raw_data`` or the typed ``*_data`` fields) and its
declared values (inputs, outputs, value_info) with element types and shapes.

Anything this reader cannot represent exactly (external or sparse tensors,
subgraph attributes, non-tensor types, a malformed or truncated message) raises
:class:`NotForNumpy`; the loader then hands the file to onnxruntime, which
decides whether it is a valid model at all. The ``onnx`` package is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.detect.onnx_proto import (
    NotForNumpy,
    as_blob,
    as_int,
    as_signed,
    as_text,
    check_message,
    entry,
    fields,
    float_list,
    int_list,
)

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
    name: str = ""


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
            self.dims.extend(int_list(wire, value))
        elif number == 2:
            self.data_type = as_int(value)
        elif number == 8:
            self.name = as_text(value)
        elif number == 9:
            self.raw = as_blob(value)
        elif number in (4, 10):
            self._typed(number, float_list(wire, value, "f" if number == 4 else "d"))
        elif number in (5, 7, 11):
            items = int_list(wire, value)
            # uint64_data is unsigned: undo the int64 reading of large values.
            self._typed(number, [i & ((1 << 64) - 1) for i in items] if number == 11 else items)
        elif number in (3, 6, 13):
            raise NotForNumpy("segmented, string or external tensor data")
        elif number == 14 and as_int(value) == _EXTERNAL:
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
        for inner, _, item in fields(as_blob(value)):
            if inner == 1:
                dim = as_signed(as_int(item))
            elif inner == 2:
                dim = as_text(item)
        dims.append(dim)
    return tuple(dims)


def value_info(buf: bytes) -> ValueInfo:
    """A ValueInfoProto; a non-tensor type gives ``elem_type`` None."""
    name, elem, dims, is_tensor = "", None, None, False
    for number, _, value in fields(buf):
        if number == 1:
            name = as_text(value)
        elif number == 2:
            for inner, _, item in fields(as_blob(value)):
                if inner == 1:  # TypeProto.tensor_type
                    is_tensor = True
                    for t_field, _, t_value in fields(as_blob(item)):
                        if t_field == 1:
                            elem = as_int(t_value)
                        elif t_field == 2:
                            dims = _dims(as_blob(t_value))
    return ValueInfo(name, elem if is_tensor else None, dims)


def attribute(buf: bytes) -> Attribute:
    """An AttributeProto; graphs, sparse tensors and type protos are refused."""
    name, kind = "", 0
    value: float | int | bytes | np.ndarray | tuple[float, ...] | tuple[int, ...] | None = None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, item in fields(buf):
        if number == 1:
            name = as_text(item)
        elif number == 20:
            kind = as_int(item)
        elif number == 2:
            value = float_list(wire, item, "f")[0]
        elif number == 3:
            value = as_signed(as_int(item))
        elif number == 4:
            value = as_blob(item)
        elif number == 5:
            value = tensor(as_blob(item))[1]
        elif number == 7:
            floats.extend(float_list(wire, item, "f"))
        elif number == 8:
            ints.extend(int_list(wire, item))
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
    op_type = domain = name = ""
    attrs: dict[str, Attribute] = {}
    for number, _, value in fields(buf):
        if number == 3:
            name = as_text(value)
        elif number == 1:
            inputs.append(as_text(value))
        elif number == 2:
            outputs.append(as_text(value))
        elif number == 4:
            op_type = as_text(value)
        elif number == 7:
            domain = as_text(value)
        elif number == 5:
            attr = attribute(as_blob(value))
            if attr.name in attrs:
                raise NotForNumpy(f"{op_type}: attribute {attr.name!r} given twice")
            attrs[attr.name] = attr
    return Node(op_type, domain, tuple(inputs), tuple(outputs), attrs, name)


def graph(buf: bytes) -> Graph:
    """A GraphProto; sparse initializers are refused."""
    out = Graph()
    for number, _, value in fields(buf):
        if number == 1:
            out.nodes.append(node(as_blob(value)))
        elif number == 5:
            name, array = tensor(as_blob(value))
            if name in out.initializers:
                raise NotForNumpy(f"initializer {name!r} given twice")
            out.initializers[name] = array
        elif number == 11:
            out.inputs.append(value_info(as_blob(value)))
        elif number == 12:
            out.outputs.append(value_info(as_blob(value)))
        elif number == 13:
            out.value_info.append(value_info(as_blob(value)))
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
            model.ir_version = as_signed(as_int(value))
        elif number == 7:
            if model.graph is not None:
                raise NotForNumpy("two graph fields")
            model.graph = graph(as_blob(value))
        elif number == 8:
            domain, version = "", 0
            for inner, _, item in fields(as_blob(value)):
                if inner == 1:
                    domain = as_text(item)
                elif inner == 2:
                    version = as_signed(as_int(item))
            if domain in model.opsets:
                raise NotForNumpy(f"opset of domain {domain!r} given twice")
            model.opsets[domain] = version
        elif number == 14:
            key, text = entry(as_blob(value))
            if key in model.metadata:  # which one onnxruntime keeps is its business
                raise NotForNumpy(f"metadata key {key!r} given twice")
            model.metadata[key] = text
        elif number in (20, 25):
            raise NotForNumpy("training info or model-local functions")
    return model
