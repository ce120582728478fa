"""The whole agent (run_agent) as a Sparkplug edge node: the simulated plant to an independent host.

The host decodes with its own wire decoder (tests/forward/sparkplug_host.py), never with
our protobuf schema.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sim.plant import Plant
from tests.forward.conftest import Mosquitto
from tests.forward.sparkplug_host import Host, sparkplug_host

ALWAYS = {"name": "running", "type": "threshold", "signal": "pump1.motor_current",
          "asset": "pump1", "above": -1.0e9}  # fmt: skip


def _config(folder: Path, plant: Plant, broker: int) -> Path:
    sink = {"type": "sparkplug", "name": "scada", "servers": [f"127.0.0.1:{broker}"],
            "tls": "off", "group_id": "plant", "data_interval": "100ms",
            "backoff": "100ms"}  # fmt: skip
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(folder / "data")},
        "sources": plant.source_configs("250ms"),
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": [ALWAYS]},
        "sinks": [sink],
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _device_values(host: Host, device: str, metric: str) -> list[Any]:
    return [
        m["value"]
        for message in host.of("DDATA")
        if message.device == device
        for m in message.payload["metrics"]
        if m.get("name") == metric and "value" in m
    ]


async def test_the_agent_births_its_devices_and_reports_values_and_alerts(
    tmp_path: Path, broker: Mosquitto
) -> None:
    async with (
        Plant(scenario="normal", opcua=False, serial=False) as plant,
        sparkplug_host(broker.port) as host,
    ):
        agent = asyncio.create_task(run_agent(load_config(_config(tmp_path, plant, broker.port))))
        try:
            await host.until(lambda h: len(_device_values(h, "pump1", "pump1/motor_current")) >= 3)
            await host.until(lambda h: True in _device_values(h, "pump1", "Alert/Active"))
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
        await host.until(lambda h: bool(h.of("NDEATH")))
    (nbirth,) = host.of("NBIRTH")
    assert nbirth.seq == 0 and nbirth.metric("bdSeq")["value"] == 0
    (dbirth,) = [m for m in host.of("DBIRTH") if m.device == "pump1"]
    names = {m["name"] for m in dbirth.payload["metrics"]}
    assert {"pump1/motor_current", "link/pump1", "Alert/Active", "detect/pump1/health"} <= names
    assert host.of("NDEATH")[-1].metric("bdSeq")["value"] == 0  # the clean stop's NDEATH
    seqs = [m.seq for m in host.messages if m.kind in ("NBIRTH", "DBIRTH", "DDATA", "NDATA")]
    assert seqs == [n % 256 for n in range(len(seqs))]  # one counter across all messages
