"""The Sparkplug B payload: our schema, built in Python, encoded with the ``protobuf`` package.

The schema is written here from the payload chapter of the Sparkplug 3.0 specification
(field numbers and types as the specification lists them), as a ``FileDescriptorProto``
built at import time and added to a private descriptor pool. So no ``protoc`` runs at
build time, no generated ``_pb2`` file is kept, and the message classes cannot clash
with another library's copy of the Sparkplug schema in protobuf's default pool.

Only the parts an edge node of ours uses are declared: ``Payload``, ``Metric``,
``PropertySet`` and ``PropertyValue`` (no DataSet, Template or MetaData). A field we do
not declare is kept as an unknown field when a command is parsed, never an error.

The proto2 equivalent of what is built below::

    message Payload {
      message PropertyValue {
        optional uint32 type = 1;  optional bool is_null = 2;
        oneof value { uint32 int_value = 3; uint64 long_value = 4; float float_value = 5;
                      double double_value = 6; bool boolean_value = 7; string string_value = 8; }
      }
      message PropertySet { repeated string keys = 1; repeated PropertyValue values = 2; }
      message Metric {
        optional string name = 1;  optional uint64 alias = 2;  optional uint64 timestamp = 3;
        optional uint32 datatype = 4;  optional bool is_historical = 5;
        optional bool is_transient = 6;  optional bool is_null = 7;
        optional PropertySet properties = 9;
        oneof value { uint32 int_value = 10; uint64 long_value = 11; float float_value = 12;
                      double double_value = 13; bool boolean_value = 14;
                      string string_value = 15; bytes bytes_value = 16; }
      }
      optional uint64 timestamp = 1;  repeated Metric metrics = 2;  optional uint64 seq = 3;
      optional string uuid = 4;  optional bytes body = 5;
    }
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Sparkplug data types (specification, "Data Types"); only those this agent sends.
INT32, INT64, DOUBLE, BOOLEAN, STRING = 3, 4, 10, 11, 12

# Quality codes of the 'Quality' property (specification, "Quality Codes").
QUALITY_BAD, QUALITY_GOOD, QUALITY_STALE = 0, 192, 500

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_VALUE_TYPES = {
    "int_value": _F.TYPE_UINT32,
    "long_value": _F.TYPE_UINT64,
    "float_value": _F.TYPE_FLOAT,
    "double_value": _F.TYPE_DOUBLE,
    "boolean_value": _F.TYPE_BOOL,
    "string_value": _F.TYPE_STRING,
    "bytes_value": _F.TYPE_BYTES,
}
_PACKAGE = "edge_agent.sparkplug_b"


def _field(message: Any, name: str, number: int, kind: int, label: int = _OPTIONAL,
           type_name: str = "", oneof: int | None = None) -> None:  # fmt: skip
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = f".{_PACKAGE}.Payload.{type_name}"
    if oneof is not None:
        field.oneof_index = oneof


def _values(message: Any, first: int, names: list[str]) -> None:
    """The ``oneof value`` block of Metric and PropertyValue."""
    message.oneof_decl.add(name="value")
    for offset, name in enumerate(names):
        _field(message, name, first + offset, _VALUE_TYPES[name], oneof=0)


def _schema() -> descriptor_pb2.FileDescriptorProto:
    schema = descriptor_pb2.FileDescriptorProto(
        name="edge_agent/sparkplug_b.proto", package=_PACKAGE, syntax="proto2"
    )
    payload = schema.message_type.add(name="Payload")
    prop = payload.nested_type.add(name="PropertyValue")
    _field(prop, "type", 1, _F.TYPE_UINT32)
    _field(prop, "is_null", 2, _F.TYPE_BOOL)
    _values(prop, 3, list(_VALUE_TYPES)[:6])
    props = payload.nested_type.add(name="PropertySet")
    _field(props, "keys", 1, _F.TYPE_STRING, _REPEATED)
    _field(props, "values", 2, _F.TYPE_MESSAGE, _REPEATED, "PropertyValue")
    metric = payload.nested_type.add(name="Metric")
    for number, name, kind in (
        (1, "name", _F.TYPE_STRING), (2, "alias", _F.TYPE_UINT64),
        (3, "timestamp", _F.TYPE_UINT64), (4, "datatype", _F.TYPE_UINT32),
        (5, "is_historical", _F.TYPE_BOOL), (6, "is_transient", _F.TYPE_BOOL),
        (7, "is_null", _F.TYPE_BOOL),
    ):  # fmt: skip
        _field(metric, name, number, kind)
    _field(metric, "properties", 9, _F.TYPE_MESSAGE, type_name="PropertySet")
    _values(metric, 10, list(_VALUE_TYPES))
    _field(payload, "timestamp", 1, _F.TYPE_UINT64)
    _field(payload, "metrics", 2, _F.TYPE_MESSAGE, _REPEATED, "Metric")
    _field(payload, "seq", 3, _F.TYPE_UINT64)
    _field(payload, "uuid", 4, _F.TYPE_STRING)
    _field(payload, "body", 5, _F.TYPE_BYTES)
    return schema


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema())
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.Payload"))


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric as this agent sends it.

    Attributes:
        name: the metric name (``/`` separates folders).
        datatype: a Sparkplug data type (INT32, INT64, DOUBLE, BOOLEAN, STRING).
        value: the value; None sends ``is_null`` (an unknown or BAD value).
        ts: when the value was captured, epoch seconds.
        quality: the 'Quality' property (0 bad, 192 good, 500 stale); None omits it.
        historical: sets ``is_historical`` (a stored value delivered late).
        uncertain: adds the property ``Uncertain = true`` (OPC UA uncertain quality).
    """

    name: str
    datatype: int
    value: float | int | bool | str | None
    ts: float
    quality: int | None = None
    historical: bool = False
    uncertain: bool = False


def millis(ts: float) -> int:
    """Epoch seconds -> the specification's UTC milliseconds."""
    return max(0, round(ts * 1000))


def _set_value(metric: Any, datatype: int, value: float | int | bool | str) -> None:
    if datatype == DOUBLE:
        metric.double_value = float(value)
    elif datatype == BOOLEAN:
        metric.boolean_value = bool(value)
    elif datatype == STRING:
        metric.string_value = str(value)
    elif datatype == INT64:
        metric.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF  # two's complement in uint64
    else:
        metric.int_value = int(value) & 0xFFFF_FFFF


def _add_metric(payload: Any, item: MetricValue, birth: bool) -> None:
    metric = payload.metrics.add(name=item.name, timestamp=millis(item.ts))
    if birth:  # a datatype belongs in births only (the specification: SHOULD NOT in DATA)
        metric.datatype = item.datatype
    if item.historical:
        metric.is_historical = True
    value = item.value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        metric.is_null = True
    else:
        _set_value(metric, item.datatype, value)
    if item.quality is not None:
        metric.properties.keys.append("Quality")
        metric.properties.values.add(type=INT32, int_value=item.quality)
    if item.uncertain:
        metric.properties.keys.append("Uncertain")
        metric.properties.values.add(type=BOOLEAN, boolean_value=True)


def encode(metrics: list[MetricValue], ts: float, seq: int | None, birth: bool = True) -> bytes:
    """A Sparkplug B payload; ``seq`` None leaves it out (NDEATH carries none).

    ``birth`` False (NDATA, DDATA) leaves out each metric's datatype.
    """
    payload = Payload(timestamp=millis(ts))
    if seq is not None:
        payload.seq = seq
    for item in metrics:
        _add_metric(payload, item, birth)
    data: bytes = payload.SerializeToString()
    return data


def decode_command(data: bytes) -> dict[str, Any] | None:
    """The metrics of an NCMD as ``{name: value}`` (later ones win); None if undecodable."""
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except Exception:  # protobuf raises its DecodeError or struct errors: garbage in, no command
        return None
    commands: dict[str, Any] = {}
    for metric in payload.metrics:
        which = metric.WhichOneof("value")
        commands[metric.name] = None if which is None else getattr(metric, which)
    return commands
