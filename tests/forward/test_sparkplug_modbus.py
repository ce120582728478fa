"""DDEATH and rebirth of a device under the whole agent, its Modbus server stopped and restarted.

The plant's pymodbus server feeds the device ``pump1`` (source ``pump1``); a second Modbus
source ``aux`` of the same asset points at a port where nothing listens, so ``pump1`` is
fed by two sources, one down from the start. The host is the independent decoder of
tests/forward/sparkplug_host.py; a jsonl sink of the same agent records every alert event,
to check that the Sparkplug host got each one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sim.plant import Plant
from tests.conftest import free_port
from tests.forward.conftest import Mosquitto
from tests.forward.sparkplug_host import Host, Message, sparkplug_host

pytestmark = pytest.mark.faults


def _config(folder: Path, plant: Plant, broker: int) -> Path:
    sources = plant.source_configs("200ms")
    sources[0].update(backoff="200ms", backoff_max="400ms")
    aux = {"type": "modbus", "name": "aux", "url": f"tcp://127.0.0.1:{free_port()}",
           "interval": "200ms", "asset": "pump1", "backoff": "200ms", "backoff_max": "400ms",
           "registers": [{"name": "flow", "address": 0, "data_type": "float32"}]}  # fmt: skip
    sinks = [
        {"type": "sparkplug", "name": "scada", "servers": [f"127.0.0.1:{broker}"], "tls": "off",
         "group_id": "plant", "data_interval": "100ms", "backoff": "100ms"},
        {"type": "jsonl", "name": "local", "path": str(folder / "alerts.jsonl")},
    ]  # fmt: skip
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(folder / "data")},
        "sources": [*sources, aux],
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "200ms", "source_down": "1s"},
        "sinks": sinks,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _events(host: Host, kinds: tuple[str, ...] = ("DDATA", "NDATA")) -> list[tuple[str, str]]:
    """``(cause, state)`` of every alert event published in DATA messages."""
    out = []
    for message in host.of(*kinds):
        for metric in message.payload["metrics"]:
            if metric["name"] == "Alert/Event" and "value" in metric:
                event = json.loads(metric["value"])
                out.append((event["cause"], event["state"]))
    return out


def _pump1(host: Host, kind: str) -> list[Message]:
    return [m for m in host.of(kind) if m.device == "pump1"]


def _good_current(message: Message) -> bool:
    metric = next((m for m in message.payload["metrics"] if m["name"] == "pump1/motor_current"),
                  None)  # fmt: skip
    return metric is not None and metric["properties"]["Quality"]["int_value"] == 192


async def test_modbus_outage_ddeath_no_ddata_then_dbirth_and_every_alert(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """tck-id-operational-behavior-device-ddeath; tck-id-topics-ddeath-{topic,mqtt,seq-num};
    tck-id-message-flow-device-birth-publish-nbirth-wait; seq one counter throughout."""
    async with (
        Plant(scenario="normal", opcua=False, serial=False) as plant,
        sparkplug_host(broker.port) as host,
    ):
        config = load_config(_config(tmp_path, plant, broker.port))
        agent = asyncio.create_task(run_agent(config))
        try:
            # aux is down from the start: pump1 stays born, aux-down is raised on it.
            await host.until(lambda h: ("aux-down", "raised") in _events(h, ("DDATA",)))
            await host.until(lambda h: any(_good_current(m) for m in _pump1(h, "DDATA")))
            async with plant.modbus_outage():
                await host.until(lambda h: bool(h.of("DDEATH")))
                await host.until(lambda h: ("pump1-down", "raised") in _events(h, ("NDATA",)))
            await host.until(lambda h: len(_pump1(h, "DBIRTH")) >= 2)
            reborn = _pump1(host, "DBIRTH")[1]
            await host.until(lambda h: any(_good_current(m) for m in _after(h, reborn)))
            await host.until(lambda h: ("pump1-down", "cleared") in _events(h))
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    (death,) = host.of("DDEATH")
    assert death.topic == "spBv1.0/plant/DDEATH/gw1/pump1"
    assert (death.qos, death.retain, death.payload["metrics"]) == (0, False, [])
    born_before = _pump1(host, "DBIRTH")[0]
    assert host.messages.index(born_before) < host.messages.index(death)  # aux alone: no death
    dead = host.messages[host.messages.index(death) + 1 : host.messages.index(reborn)]
    assert not [m for m in dead if m.device == "pump1"], "DDATA for a dead device"
    first_after = next(m for m in host.messages[host.messages.index(death) + 1 :]
                       if m.device == "pump1")  # fmt: skip
    assert first_after is reborn and reborn.metric("pump1/motor_current")["value"] is not None
    assert reborn.metric("aux/flow")["properties"]["Quality"]["int_value"] == 0
    seqs = [m.seq for m in host.messages if m.kind != "NDEATH"]
    assert seqs == [n % 256 for n in range(len(seqs))]
    # Every alert event the agent stored reached the host, in DDATA or (device dead) NDATA.
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    stored = [(e["cause"], e["state"]) for e in map(json.loads, lines)]
    assert ("pump1-down", "raised") in stored and set(stored) <= set(_events(host))


def _after(host: Host, message: Message) -> list[Message]:
    return [m for m in host.messages[host.messages.index(message) + 1 :] if m.kind == "DDATA"
            and m.device == "pump1"]  # fmt: skip
