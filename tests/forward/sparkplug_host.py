"""An independent Sparkplug host for the tests: its own protobuf wire decoder and encoder.

Nothing here imports the agent's payload module or the ``protobuf`` package: the
wire format (varints, length-delimited and fixed fields) is read by hand from the
field numbers of the Sparkplug B schema, so a mistake in our schema cannot hide
itself by being decoded with the same mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

# Field numbers of the Sparkplug B schema (specification, payload chapter).
_PAYLOAD = {1: "timestamp", 2: "metrics", 3: "seq", 4: "uuid", 5: "body"}
_METRIC = {
    1: "name", 2: "alias", 3: "timestamp", 4: "datatype", 5: "is_historical",
    6: "is_transient", 7: "is_null", 9: "properties", 10: "int_value", 11: "long_value",
    12: "float_value", 13: "double_value", 14: "boolean_value", 15: "string_value",
    16: "bytes_value",
}  # fmt: skip
_PROPERTY_VALUE = {
    1: "type", 2: "is_null", 3: "int_value", 4: "long_value",
    5: "float_value", 6: "double_value", 7: "boolean_value", 8: "string_value",
}  # fmt: skip
BOOLEAN, DOUBLE, INT64, STRING = 11, 10, 4, 12


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """``(number, wire type, raw value)`` of each field of one message."""
    out, at = [], 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"wire type {wire} at field {number}")
        out.append((number, wire, value))
    return out


def _scalar(name: str, raw: Any) -> Any:
    if name in ("name", "string_value", "uuid"):
        return raw.decode()
    if name == "double_value":
        return struct.unpack("<d", raw)[0]
    if name == "float_value":
        return struct.unpack("<f", raw)[0]
    if name.startswith("is_") or name == "boolean_value":
        return bool(raw)
    return raw


def _properties(data: bytes) -> dict[str, Any]:
    keys, values = [], []
    for number, _, raw in fields(data):
        if number == 1:
            keys.append(raw.decode())
        elif number == 2:
            values.append(
                {_PROPERTY_VALUE[n]: _scalar(_PROPERTY_VALUE[n], r) for n, _, r in fields(raw)}
            )
    return dict(zip(keys, values, strict=True))


def decode_metric(data: bytes) -> dict[str, Any]:
    """One Metric as a dict; ``value`` holds whichever value field was set."""
    metric: dict[str, Any] = {}
    for number, _, raw in fields(data):
        name = _METRIC[number]
        if name == "properties":
            metric["properties"] = _properties(raw)
        elif number >= 10:
            metric["value"] = _scalar(name, raw)
            metric["value_field"] = name
        else:
            metric[name] = _scalar(name, raw)
    return metric


def decode_payload(data: bytes) -> dict[str, Any]:
    """A Sparkplug B payload as a dict with a list of metrics."""
    payload: dict[str, Any] = {"metrics": []}
    for number, _, raw in fields(data):
        name = _PAYLOAD[number]
        if name == "metrics":
            payload["metrics"].append(decode_metric(raw))
        else:
            payload[name] = raw
    return payload


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_rebirth(ts_ms: int) -> bytes:
    """An NCMD payload: ``Node Control/Rebirth = true`` (Boolean)."""
    name = b"Node Control/Rebirth"
    metric = _key(1, 2) + _encode_varint(len(name)) + name
    metric += _key(3, 0) + _encode_varint(ts_ms) + _key(4, 0) + _encode_varint(BOOLEAN)
    metric += _key(14, 0) + b"\x01"
    return _key(1, 0) + _encode_varint(ts_ms) + _key(2, 2) + _encode_varint(len(metric)) + metric


def encode_writes(values: dict[str, float | bool], ts_ms: int) -> bytes:
    """An NCMD / DCMD payload writing metrics: a Double, or a Boolean for a bool."""
    body = _key(1, 0) + _encode_varint(ts_ms)
    for name, value in values.items():
        raw = name.encode()
        metric = _key(1, 2) + _encode_varint(len(raw)) + raw + _key(3, 0) + _encode_varint(ts_ms)
        if isinstance(value, bool):
            metric += _key(4, 0) + _encode_varint(BOOLEAN) + _key(14, 0) + bytes([value])
        else:
            metric += _key(4, 0) + _encode_varint(DOUBLE) + _key(13, 1) + struct.pack("<d", value)
        body += _key(2, 2) + _encode_varint(len(metric)) + metric
    return body


@dataclass
class Message:
    """One message the host received."""

    topic: str
    kind: str
    device: str
    payload: dict[str, Any]
    qos: int
    retain: bool
    at: float = field(default_factory=time.time)
    """Arrival time (epoch seconds), for the benchmark's delays."""

    def metric(self, name: str) -> dict[str, Any]:
        """The first metric called ``name``."""
        return next(m for m in self.payload["metrics"] if m.get("name") == name)

    @property
    def seq(self) -> int | None:
        """The payload's seq (None when absent)."""
        return self.payload.get("seq")


@dataclass
class Host:
    """What the host saw, in arrival order."""

    messages: list[Message] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None

    def of(self, *kinds: str) -> list[Message]:
        """Messages of the given kinds (NBIRTH, DDATA ...)."""
        return [m for m in self.messages if m.kind in kinds]

    async def until(self, check: Callable[[Host], bool], within: float = 20) -> None:
        """Wait until ``check(self)`` holds (TimeoutError otherwise)."""
        async with asyncio.timeout(within):
            while not check(self):
                self.changed.clear()
                await self.changed.wait()

    async def state(self, host: str, online: bool, ts_ms: int) -> None:
        """Publish the host's retained STATE (as a Primary Host Application does)."""
        assert self.client is not None
        body = json.dumps({"online": online, "timestamp": ts_ms})
        await self.client.publish(f"spBv1.0/STATE/{host}", body, qos=1, retain=True)

    async def rebirth(self, group: str, node: str, ts_ms: int) -> None:
        """Send an NCMD rebirth request."""
        assert self.client is not None
        await self.client.publish(f"spBv1.0/{group}/NCMD/{node}", encode_rebirth(ts_ms), qos=0)

    async def write(self, topic: str, values: dict[str, float | bool], ts_ms: int) -> None:
        """Send an NCMD or DCMD (``topic``) writing ``values``."""
        assert self.client is not None
        await self.client.publish(topic, encode_writes(values, ts_ms), qos=0)


def _parse(message: aiomqtt.Message) -> Message | None:
    parts = str(message.topic).split("/")
    if parts[1] == "STATE" or parts[2] in ("NCMD", "DCMD"):
        return None
    data = bytes(message.payload)  # type: ignore[arg-type,unused-ignore]
    device = parts[4] if len(parts) > 4 else ""
    return Message(str(message.topic), parts[2], device, decode_payload(data), message.qos,
                   message.retain)  # fmt: skip


@contextlib.asynccontextmanager
async def sparkplug_host(port: int) -> AsyncIterator[Host]:
    """A host subscribed to ``spBv1.0/#`` at QoS 1 on the broker at ``port``."""
    host = Host()
    ready = asyncio.Event()

    async def read() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-host") as client:
            host.client = client
            await client.subscribe("spBv1.0/#", qos=1)
            ready.set()
            async for message in client.messages:
                parsed = _parse(message)
                if parsed is not None:
                    host.messages.append(parsed)
                    host.changed.set()

    async def read_until_broker_dies() -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # a test may kill the broker
            await read()

    task = asyncio.create_task(read_until_broker_dies())
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        yield host
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Proxy:
    """A TCP proxy to a broker that a test can cut (the will fires) or close (an outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._pipes: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (a free one when 0)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._pipes += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                             return_exceptions=True)  # fmt: skip

    def cut(self) -> None:
        """Drop every connection at once, without DISCONNECT (like a pulled cable)."""
        for writer in self._pipes:
            writer.transport.abort()
        self._pipes.clear()

    async def stop(self) -> None:
        """Stop listening and cut."""
        self.accepting = False
        self.cut()
        if self._server is not None:
            self._server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()
