"""Where the simulated plant publishes each signal: Modbus registers, OPC UA nodes.

Modbus TCP, unit (slave) id 1, holding registers (function code 3). The same
addresses also answer input-register reads (function code 4): the simulated
device has one shared register bank, as many small PLCs do.

======  ========  ==================  =======  =====  ==========================
address type      name                scale    unit   note
======  ========  ==================  =======  =====  ==========================
0-1     float32   motor_current       1        A      big-endian, ABCD
2-3     float32   bearing_temp        1        degC   big-endian, ABCD
4-5     float32   vibration_rms       1        mm/s   big-endian, ABCD
6-7     float32   discharge_pressure  1        bar    big-endian, ABCD
8-9     float32   flow                1        m3/h   big-endian, ABCD
10      int16     bearing_temp_x10    0.1      degC   bearing_temp in tenths
11      uint16    heartbeat           1               +1 per update, wraps
======  ========  ==================  =======  =====  ==========================

Addresses 12 and above are not mapped: reading them gets the Modbus exception
"illegal data address" (code 2). Writes are refused the same way.

OPC UA: namespace ``urn:edge-agent:sim:plant`` (index 2), Double variables under
``Objects/Plant/Pump1`` with string node ids:

==============  ===========================  ==========================================
signal          node id                      browse path
==============  ===========================  ==========================================
tank_level      ``ns=2;s=Pump1.TankLevel``      ``0:Objects/2:Plant/2:Pump1/2:TankLevel``
valve_position  ``ns=2;s=Pump1.ValvePosition``  ``0:Objects/2:Plant/2:Pump1/2:ValvePosition``
inlet_temp      ``ns=2;s=Pump1.InletTemp``      ``0:Objects/2:Plant/2:Pump1/2:InletTemp``
==============  ===========================  ==========================================

Serial: the vibration probe writes ``VIB,rms=0.31,peak=1.20,temp=41.8`` and CRLF
about once a second (see :func:`edge_agent.sim.physics.probe_line`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

MODBUS_UNIT = 1
OPCUA_NAMESPACE = "urn:edge-agent:sim:plant"
OPCUA_NS_INDEX = 2  # the first namespace a server registers gets index 2
PROBE_EOL = "\r\n"


@dataclass(frozen=True, slots=True)
class Register:
    """One value in the Modbus register map.

    Attributes:
        name: tag name, used as the signal name in the rendered agent config.
        address: first holding register (0-based, as on the wire).
        data_type: ``float32`` (2 registers, ABCD), ``int16`` or ``uint16``.
        signal: the physics signal it shows (empty for ``heartbeat``).
        scale: engineering value = raw * scale (int16/uint16 only).
        unit: engineering unit.
    """

    name: str
    address: int
    data_type: Literal["float32", "int16", "uint16"]
    signal: str
    scale: float = 1.0
    unit: str = ""

    @property
    def width(self) -> int:
        """Registers it occupies."""
        return 2 if self.data_type == "float32" else 1


REGISTERS: tuple[Register, ...] = (
    Register("motor_current", 0, "float32", "motor_current", unit="A"),
    Register("bearing_temp", 2, "float32", "bearing_temp", unit="degC"),
    Register("vibration_rms", 4, "float32", "vibration_rms", unit="mm/s"),
    Register("discharge_pressure", 6, "float32", "discharge_pressure", unit="bar"),
    Register("flow", 8, "float32", "flow", unit="m3/h"),
    Register("bearing_temp_x10", 10, "int16", "bearing_temp", scale=0.1, unit="degC"),
    Register("heartbeat", 11, "uint16", ""),
)
REGISTER_COUNT = sum(r.width for r in REGISTERS)


@dataclass(frozen=True, slots=True)
class OpcuaNode:
    """One OPC UA variable of the plant.

    Attributes:
        signal: the physics signal it shows (and the signal name in the agent config).
        name: the string part of its node id, e.g. ``Pump1.TankLevel``.
        browse_name: its browse name in namespace 2, e.g. ``TankLevel``.
        unit: engineering unit.
    """

    signal: str
    name: str
    browse_name: str
    unit: str

    @property
    def node_id(self) -> str:
        """Its node id as text: ``ns=2;s=Pump1.TankLevel``."""
        return f"ns={OPCUA_NS_INDEX};s={self.name}"

    @property
    def browse_path(self) -> str:
        """Its browse path from the root: ``0:Objects/2:Plant/2:Pump1/2:TankLevel``."""
        ns = OPCUA_NS_INDEX
        return f"0:Objects/{ns}:Plant/{ns}:Pump1/{ns}:{self.browse_name}"


OPCUA_NODES: tuple[OpcuaNode, ...] = (
    OpcuaNode("tank_level", "Pump1.TankLevel", "TankLevel", "%"),
    OpcuaNode("valve_position", "Pump1.ValvePosition", "ValvePosition", "%"),
    OpcuaNode("inlet_temp", "Pump1.InletTemp", "InletTemp", "degC"),
)


def _int_register(value: float, scale: float, signed: bool) -> int:
    lo, hi = (-32768, 32767) if signed else (0, 65535)
    raw = round(value / scale) if math.isfinite(value) else 0
    return min(max(raw, lo), hi) & 0xFFFF


def encode_registers(values: dict[str, float], heartbeat: int) -> list[int]:
    """The whole register bank (addresses 0..REGISTER_COUNT-1) for one reading.

    Args:
        values: physics values by signal name.
        heartbeat: update counter; stored modulo 65536.
    """
    bank = [0] * REGISTER_COUNT
    for reg in REGISTERS:
        value = float(heartbeat % 65536) if reg.name == "heartbeat" else values[reg.signal]
        if reg.data_type == "float32":
            bank[reg.address : reg.address + 2] = struct.unpack(">2H", struct.pack(">f", value))
        else:
            bank[reg.address] = _int_register(value, reg.scale, reg.data_type == "int16")
    return bank


def register_map_text() -> str:
    """The register map as a plain-text table, for people at a terminal."""
    lines = ["addr   type     name                 scale  unit"]
    for reg in REGISTERS:
        span = f"{reg.address}-{reg.address + 1}" if reg.width == 2 else str(reg.address)
        order = " (ABCD)" if reg.data_type == "float32" else ""
        lines.append(
            f"{span:<6} {reg.data_type:<8} {reg.name:<20} {reg.scale:<6g} {reg.unit}{order}"
        )
    return "\n".join(lines)


def node_map_text() -> str:
    """The OPC UA nodes as a plain-text table."""
    lines = [f"namespace {OPCUA_NAMESPACE} (ns={OPCUA_NS_INDEX})"]
    for node in OPCUA_NODES:
        lines.append(f"{node.node_id:<30} {node.browse_path:<42} {node.unit}")
    return "\n".join(lines)
