"""SIGHUP under a Sparkplug sink: the sink takes the new catalogue, devices born and dead.

The whole agent (``run_agent``) polls two plants' pymodbus servers and publishes to a
mosquitto broker, where the independent decoder of tests/forward/sparkplug_host.py
listens. The first reload adds a source (a new device, ``pump2``) and a register to
the running one (``pump1``'s metric set changes); the second removes the source again.
Stopping the added source's server must kill its device: the sink counts the new
source, which it did not when it kept its start-up catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sim.plant import Plant
from tests.forward.conftest import Mosquitto
from tests.forward.sparkplug_host import Host, Message, sparkplug_host
from tests.test_agent import _until

pytestmark = pytest.mark.faults


def _source(plant: Plant, name: str, drop: str = "") -> dict[str, Any]:
    """The plant's Modbus source as ``name`` (asset ``name``), without register ``drop``."""
    config = plant.source_configs("200ms")[0]
    config.update(name=name, asset=name, backoff="200ms", backoff_max="400ms")
    config["registers"] = [r for r in config["registers"] if r["name"] != drop]
    return config


def _write(path: Path, folder: Path, broker: int, sources: list[dict[str, Any]]) -> None:
    sink = {"type": "sparkplug", "name": "scada", "servers": [f"127.0.0.1:{broker}"],
            "tls": "off", "group_id": "plant", "data_interval": "100ms",
            "backoff": "100ms"}  # fmt: skip
    data = {
        "agent": {"id": "gw1", "data_dir": str(folder / "data")},
        "sources": sources,
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "200ms"},
        "sinks": [sink],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _of(host: Host, kind: str, device: str) -> list[Message]:
    return [m for m in host.of(kind) if m.device == device]


def _names(message: Message) -> set[str]:
    return {m["name"] for m in message.payload["metrics"]}


def _good(message: Message, name: str) -> bool:
    metric = next((m for m in message.payload["metrics"] if m["name"] == name), None)
    return metric is not None and metric["properties"]["Quality"]["int_value"] == 192


def _index(host: Host, message: Message) -> int:
    return host.messages.index(message)


async def _reload(host: Host, caplog: pytest.LogCaptureFixture, done: int) -> None:
    """SIGHUP; wait until the ``done``-th reload is logged, and none refused."""

    def said() -> bool:
        lines = [r for r in caplog.records if "reloaded:" in r.getMessage()]
        return len(lines) >= done or "not reloaded" in caplog.text

    os.kill(os.getpid(), signal.SIGHUP)
    await host.until(lambda _: said())
    assert "not reloaded" not in caplog.text


async def _run(
    folder: Path, broker: Mosquitto, host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    path = folder / "agent.yaml"
    async with (
        Plant(scenario="normal", opcua=False, serial=False) as one,
        Plant(scenario="normal", opcua=False, serial=False) as two,
    ):
        _write(path, folder, broker.port, [_source(one, "pump1", drop="heartbeat")])
        agent = asyncio.create_task(run_agent(load_config(path)))
        try:
            await host.until(
                lambda h: any(_good(m, "pump1/flow") for m in _of(h, "DDATA", "pump1"))
            )
            _write(path, folder, broker.port, [_source(one, "pump1"), _source(two, "pump2")])
            await _reload(host, caplog, 1)
            await host.until(
                lambda h: any(_good(m, "pump2/flow") for m in _of(h, "DDATA", "pump2"))
            )
            async with two.modbus_outage():  # the added source is pump2's only feed
                await host.until(lambda h: bool(_of(h, "DDEATH", "pump2")))
            await host.until(lambda h: len(_of(h, "DBIRTH", "pump2")) >= 2)
            _write(path, folder, broker.port, [_source(one, "pump1")])
            await _reload(host, caplog, 2)
            await host.until(lambda h: len(_of(h, "DDEATH", "pump2")) >= 2)
            more = len(_of(host, "DDATA", "pump1")) + 5  # a while longer: nothing of pump2
            await host.until(lambda h: len(_of(h, "DDATA", "pump1")) >= more)
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)


async def test_reload_births_new_and_changed_devices_and_kills_removed_ones(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """tck-id-operational-behavior-data-publish-dbirth (a DBIRTH carries every metric the
    device publishes), tck-id-operational-behavior-device-ddeath; seq one counter."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    async with sparkplug_host(broker.port) as host:
        await _run(tmp_path, broker, host, caplog)
    first, reborn = _of(host, "DBIRTH", "pump1")  # no other pump1 birth: pump1 never died
    assert "pump1/heartbeat" not in _names(first) and "pump1/heartbeat" in _names(reborn)
    (changed,) = _of(host, "DDEATH", "pump1")  # its metric set changed: DDEATH, then DBIRTH
    assert _index(host, first) < _index(host, changed) < _index(host, reborn)
    outage, removed = _of(host, "DDEATH", "pump2")
    born, back = _of(host, "DBIRTH", "pump2")
    assert _index(host, born) < _index(host, outage) < _index(host, back) < _index(host, removed)
    assert not [m for m in host.messages[_index(host, removed) + 1 :] if m.device == "pump2"]
    _assert_data_within_births(host)
    seqs = [m.seq for m in host.messages if m.kind != "NDEATH"]
    assert seqs == [n % 256 for n in range(len(seqs))]


def _assert_data_within_births(host: Host) -> None:
    """Every DDATA comes from a born device and names only metrics of its last DBIRTH."""
    born: dict[str, set[str]] = {}
    for message in host.messages:
        if message.kind == "DBIRTH":
            born[message.device] = _names(message)
        elif message.kind == "DDEATH":
            born.pop(message.device)
        elif message.kind == "DDATA":
            assert _names(message) <= born[message.device], message


async def test_a_reload_while_the_broker_is_away_is_in_the_next_births(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """No session to announce it in: the next NBIRTH's DBIRTHs carry the new catalogue."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    path = tmp_path / "agent.yaml"
    async with (
        Plant(scenario="normal", opcua=False, serial=False) as one,
        Plant(scenario="normal", opcua=False, serial=False) as two,
    ):
        _write(path, tmp_path, broker.port, [_source(one, "pump1", drop="heartbeat")])
        agent = asyncio.create_task(run_agent(load_config(path)))
        try:
            async with sparkplug_host(broker.port) as before:
                await before.until(lambda h: bool(_of(h, "DDATA", "pump1")))
            broker.stop()
            _write(path, tmp_path, broker.port, [_source(one, "pump1"), _source(two, "pump2")])
            os.kill(os.getpid(), signal.SIGHUP)
            await _until(lambda: "reloaded:" in caplog.text, 20)  # or "not reloaded"
            broker.start()
            async with sparkplug_host(broker.port) as host:
                await host.until(lambda h: bool(_of(h, "DDATA", "pump2")))
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    assert "not reloaded" not in caplog.text
    births = host.messages[: next(i for i, m in enumerate(host.messages) if m.kind == "DDATA")]
    assert [(m.kind, m.device) for m in births] == [
        ("NBIRTH", ""), ("DBIRTH", "pump1"), ("DBIRTH", "pump2")
    ]  # fmt: skip
    assert "pump1/heartbeat" in _names(births[1]) and "pump2/flow" in _names(births[2])
    _assert_data_within_births(host)
