"""The agent's source config for a running plant: the one place that knows both sides.

The plant publishes physics signals (``motor_current``, ``tank_level``,
``probe_rms``...); the agent names them ``<source>.<name>``. :data:`AGENT_SIGNALS`
maps one to the other for the default source names below, so a model trained
on :func:`edge_agent.sim.physics.simulate` output can name its inputs as the
agent will see them.
"""

from __future__ import annotations

from typing import Any, Protocol

from edge_agent.sim.signal_map import OPCUA_NODES, PROBE_EOL, REGISTERS

MODBUS_SOURCE = "pump1"
OPCUA_SOURCE = "skid"
SERIAL_SOURCE = "probe"
ASSET = "pump1"

# probe line key -> physics signal
_PROBE_KEYS = {
    "rms": ("probe_rms", "g"),
    "peak": ("probe_peak", "g"),
    "temp": ("probe_temp", "degC"),
}

AGENT_SIGNALS: dict[str, str] = {
    **{r.signal: f"{MODBUS_SOURCE}.{r.name}" for r in REGISTERS if r.signal == r.name},
    **{n.signal: f"{OPCUA_SOURCE}.{n.signal}" for n in OPCUA_NODES},
    **{signal: f"{SERIAL_SOURCE}.{key}" for key, (signal, _) in _PROBE_KEYS.items()},
}
"""Physics signal name -> the agent's signal name, e.g. ``probe_rms`` -> ``probe.rms``."""


class PlantAddresses(Protocol):
    """What the renderer needs of a plant (a running :class:`~edge_agent.sim.plant.Plant`)."""

    @property
    def modbus_url(self) -> str: ...

    @property
    def opcua_url(self) -> str: ...

    @property
    def serial_path(self) -> str: ...


def source_configs(plant: PlantAddresses, interval: str = "1s") -> list[dict[str, Any]]:
    """The ``sources:`` entries of an agent config reading this plant.

    Plain YAML-ready data (durations as strings). The OPC UA source reads two
    nodes by NodeId and one by browse path; the Modbus source reads float32,
    int16 (scaled) and uint16 registers; the serial source parses ``key=value``.
    Peers the plant does not serve are left out.
    """
    configs = [_modbus(plant.modbus_url, interval)]
    if plant.opcua_url:
        configs.append(_opcua(plant.opcua_url, interval))
    if plant.serial_path:
        configs.append(_serial(plant.serial_path, interval))
    return configs


def _modbus(url: str, interval: str) -> dict[str, Any]:
    registers = []
    for reg in REGISTERS:
        entry: dict[str, Any] = {"name": reg.name, "address": reg.address}
        entry["data_type"] = reg.data_type
        if reg.scale != 1.0:
            entry["scale"] = reg.scale
        if reg.unit:
            entry["unit"] = reg.unit
        registers.append(entry)
    return {
        "type": "modbus",
        "name": MODBUS_SOURCE,
        "url": url,
        "device_id": 1,
        "interval": interval,
        "asset": ASSET,
        "registers": registers,
    }


def _opcua(url: str, interval: str) -> dict[str, Any]:
    nodes = []
    for i, node in enumerate(OPCUA_NODES):
        where = {"path": node.browse_path} if i == len(OPCUA_NODES) - 1 else {"node": node.node_id}
        nodes.append({"name": node.signal, **where, "unit": node.unit})
    return {
        "type": "opcua",
        "name": OPCUA_SOURCE,
        "url": url,
        "interval": interval,
        "asset": ASSET,
        "groups": [{"mode": "poll", "nodes": nodes}],
    }


def _serial(path: str, interval: str) -> dict[str, Any]:
    return {
        "type": "serial",
        "name": SERIAL_SOURCE,
        "port": path,
        "baud": 9600,
        "interval": interval,
        "asset": ASSET,
        "framing": {"type": "delimiter", "delimiter": PROBE_EOL},
        "parse": {"type": "kv"},
        "signals": [{"name": key, "unit": unit} for key, (_, unit) in _PROBE_KEYS.items()],
    }
