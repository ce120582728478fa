"""Writing one node on the source's session: a typed Variant, then a read-back.

OPC UA sessions take several requests at once (each has its own request handle), so
a write goes on the same session as the polls and subscriptions without waiting for
them. The Variant carries the type the config gives (``write.type``), because servers
check it: a Double written to a Float node is refused with BadTypeMismatch.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from edge_agent.errors import WriteError
from edge_agent.sources.opcua.config import OpcuaSourceConfig, signal_name
from edge_agent.sources.opcua.node_list import NodeRow, OpcuaWriteConfig
from edge_agent.types import ReadBack

if TYPE_CHECKING:
    from asyncua.client.client import Client

_INTEGER_RANGES = {
    "SByte": (-(2**7), 2**7 - 1), "Byte": (0, 2**8 - 1),
    "Int16": (-(2**15), 2**15 - 1), "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1), "UInt32": (0, 2**32 - 1),
    "Int64": (-(2**63), 2**63 - 1), "UInt64": (0, 2**64 - 1),
}  # fmt: skip


def writable_nodes(config: OpcuaSourceConfig) -> dict[str, tuple[OpcuaWriteConfig, bool]]:
    """Signal -> (its ``write:`` block, whether it is a Boolean), for writable nodes."""
    return {
        signal_name(config.name, node): (node.write, node.write.type == "Boolean")
        for group in config.groups
        for node in group.rows()
        if node.write is not None
    }


def typed(kind: str, value: float | int | bool) -> tuple[Any, float]:
    """The Python value for a Variant of ``kind``, and the value the node will hold.

    Raises:
        ValueError: the type cannot hold ``value`` (nothing may be sent).
    """
    if kind == "Boolean":
        return bool(value), float(bool(value))
    if kind in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[kind]
        if float(value) != round(value) or not low <= round(value) <= high:
            raise ValueError(f"{value!r} is not a whole number within {kind} ({low}..{high})")
        return round(value), float(round(value))
    if kind == "Float":
        try:
            single = struct.unpack("<f", struct.pack("<f", value))[0]
        except OverflowError:
            raise ValueError(f"{value!r} does not fit a Float") from None
        return float(value), float(single)
    return float(value), float(value)


async def write_signal(
    client: Client, config: OpcuaSourceConfig, signal: str, value: float | int | bool
) -> ReadBack:
    """Write ``signal``'s node and read it back.

    Raises:
        ValueError: the node's type cannot hold ``value`` (nothing sent).
        WriteError: not writable, node not found, write refused or read back Bad.
        SourceError: the session failed.
    """
    from asyncua import ua
    from asyncua.ua.uaerrors import UaStatusCodeError

    from edge_agent.sources.opcua.session import resolve, translate_errors

    node_config = _node(config, signal)
    write = node_config.write
    assert write is not None  # _node checks it
    python_value, expected = typed(write.type, value)
    with translate_errors(config.name, config):
        (resolved,) = await resolve(client, [signal], [node_config])
        if resolved.node is None:
            raise WriteError(f"{signal}: node {node_config.path} not found on the server")
        node = client.get_node(resolved.node)
        variant = ua.Variant(python_value, getattr(ua.VariantType, write.type))
        try:
            await node.write_value(ua.DataValue(variant))
        except UaStatusCodeError as exc:
            raise WriteError(f"server refused the write ({ua.StatusCode(exc.code).name})") from exc
        data = await node.read_data_value(raise_on_bad_status=False)
    return ReadBack(expected, _actual(data))


def _actual(data: Any) -> float:
    status = data.StatusCode
    if status is not None and not status.is_good():
        raise WriteError(f"read back: {status.name}")
    value = data.Value.Value if data.Value is not None else None
    if not isinstance(value, bool | int | float) or not math.isfinite(float(value)):
        raise WriteError(f"read back {value!r}, not a number")
    return float(value)


def _node(config: OpcuaSourceConfig, signal: str) -> NodeRow:
    for group in config.groups:
        for node in group.rows():
            if signal_name(config.name, node) == signal and node.write is not None:
                return node
    raise WriteError(f"{signal} is not a writable signal of {config.name}")
