"""SIGHUP under the sinks that take commands: Sparkplug DCMD and a commands sink restarted.

The whole agent (``run_agent``) polls pymodbus servers and talks to mosquitto, where
the independent decoder of tests/forward/sparkplug_host.py plays the Sparkplug host.
A reload that adds a source gives its device a DBIRTH with the ``Command/*`` metrics,
and a DCMD to it writes that source's server. A reload that changes the Sparkplug sink
itself restarts it: NDEATH (bdSeq N) on a clean disconnect, then NBIRTH (bdSeq N + 1)
and DBIRTHs that carry the values the old session knew; DCMD works on the new session.
A DCMD to a device a reload removed is refused.
A reload that turns ``commands: on`` for an MQTT sink (none took any before) restarts
it with a new executor: its commands are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from tests.commands.modbus_plant import held_at, modbus_plant, server_words
from tests.commands.test_reload_commands import _agent, _reload, _source
from tests.conftest import free_port
from tests.forward.conftest import Mosquitto
from tests.forward.sparkplug_host import Host, Message, sparkplug_host
from tests.test_agent import Seen, _until


def _write_spark(path: Path, broker: int, sources: list[dict[str, Any]], **sink: Any) -> None:
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(path.parent / "data")},
        "sources": sources,
        "sinks": [{"type": "sparkplug", "name": "scada", "servers": [f"127.0.0.1:{broker}"],
                   "tls": "off", "group_id": "plant", "data_interval": "100ms",
                   "backoff": "100ms", "commands": "on", **sink}],
        "writes": {"mode": "on", "min_interval": "0s"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@contextlib.asynccontextmanager
async def _running(path: Path) -> AsyncIterator[None]:
    agent = asyncio.create_task(run_agent(load_config(path)))
    try:
        yield
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)


def _answers(host: Host, metric: str) -> list[Message]:
    return [m for m in host.of("DDATA", "NDATA")
            if any(x.get("name") == "Command/Metric" and x.get("value") == metric
                   for x in m.payload["metrics"])]  # fmt: skip


def _polled_data(host: Host, metric: str, value: float) -> list[Message]:
    """DDATA by exception (no command answer) carrying ``metric`` = ``value``."""
    return [m for m in host.of("DDATA")
            if {"name": metric, "value": value}.items() <= _named(m, metric).items()
            and not _named(m, "Command/Status")]  # fmt: skip


def _named(message: Message, name: str) -> dict[str, Any]:
    return next((x for x in message.payload["metrics"] if x.get("name") == name), {})


def _births(host: Host, kind: str, device: str = "") -> list[Message]:
    return [m for m in host.of(kind) if m.device == device]


async def _dcmd(host: Host, device: str, metric: str, value: float) -> Message:
    """Write ``metric`` by DCMD; the answer (one DDATA or NDATA) once it arrives."""
    count = len(_answers(host, metric))
    await host.write(f"spBv1.0/plant/DCMD/gw1/{device}", {metric: value}, int(time.time() * 1e3))
    await host.until(lambda h: len(_answers(h, metric)) > count, 30)
    return _answers(host, metric)[-1]


async def test_sparkplug_dcmd_follows_a_reload_of_the_sources_and_of_the_sink(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, second = tmp_path / "agent.yaml", free_port()
    one_source, two_source = _source("plc", port, interval="1s"), _source("plc2", second)
    async with (
        modbus_plant(port) as (one, _),
        modbus_plant(second) as (two, _),
        sparkplug_host(broker.port) as host,
    ):
        _write_spark(path, broker.port, [one_source])
        async with _running(path):
            await host.until(lambda h: bool(_births(h, "DBIRTH", "plc")), 30)
            _write_spark(path, broker.port, [one_source, two_source])
            await _reload(caplog, 1)
            await host.until(lambda h: bool(_births(h, "DBIRTH", "plc2")), 30)
            added = await _dcmd(host, "plc2", "plc2/sp_multi", 55.0)
            _write_spark(path, broker.port, [one_source, two_source], data_interval="200ms")
            await _reload(caplog, 2)
            await host.until(lambda h: len(_births(h, "NBIRTH")) >= 2, 30)
            await host.until(lambda h: len(_births(h, "DBIRTH", "plc")) >= 2, 30)
            again = await _dcmd(host, "plc", "plc/sp_multi", 66.0)
            # The new sink sees the samples: the written value is polled and published.
            await host.until(lambda h: bool(_polled_data(h, "plc/sp_multi", 66.0)), 30)
            _write_spark(path, broker.port, [one_source], data_interval="200ms")
            await _reload(caplog, 3)
            await host.until(lambda h: bool(_births(h, "DDEATH", "plc2")), 30)
            removed = await _dcmd(host, "plc2", "plc2/sp_multi", 77.0)
    assert added.device == "plc2" and added.metric("Command/Status")["value"] == "done"
    assert await server_words(two, 3, 40, 1) == [55]
    assert _births(host, "DBIRTH", "plc2")[0].metric("Command/Status").get("is_null")
    assert again.device == "plc" and again.metric("Command/Status")["value"] == "done"
    assert await server_words(one, 3, 40, 1) == [66]
    # A DCMD to a device the reload removed: refused, as any metric not born (on the node).
    assert (removed.kind, removed.metric("Command/Status")["value"]) == ("NDATA", "refused")
    assert (
        removed.metric("Command/Reason")["value"]
        == "no metric 'plc2/sp_multi' is born on device plc2"
    )
    assert await server_words(two, 3, 40, 1) == [55]
    # The restart: NDEATH of the old session, then the next bdSeq's births.
    first, restarted = _births(host, "NBIRTH")[:2]
    death = _births(host, "NDEATH")[0]  # (the second: the agent's stop)
    bd_seq = first.metric("bdSeq")["value"]
    assert death.metric("bdSeq")["value"] == bd_seq
    assert restarted.metric("bdSeq")["value"] == bd_seq + 1
    assert host.messages.index(death) < host.messages.index(restarted)
    # The new session's DBIRTH carries the values the old one knew (polled every 1 s).
    reborn = _births(host, "DBIRTH", "plc")[1]
    assert reborn.metric("plc/temp")["properties"]["Quality"]["int_value"] == 192
    assert "reloaded: source plc2 added" in caplog.text
    assert "reloaded: sink scada changed" in caplog.text


async def test_a_sink_that_takes_commands_after_a_reload_answers_them(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, seen = tmp_path / "agent.yaml", Seen()
    async with modbus_plant(port) as (server, _):
        _mqtt(path, broker.port, port, "off")
        async with _agent(path, broker, seen) as requester:
            online = requester.statuses
            _mqtt(path, broker.port, port, "on")
            await _reload(caplog, 1)
            await _until(lambda: requester.statuses > online, 30)  # the sink is back
            done = await requester.command("on", "plc.sp_multi", 42)
    assert (done["status"], done["read_back"]) == ("done", 42.0)
    assert await server_words(server, 3, 40, 1) == [42]
    assert "reloaded: sink cloud changed" in caplog.text
    assert "commands: writes on for" in caplog.text


def _mqtt(path: Path, broker: int, modbus: int, commands: str, **more: Any) -> None:
    """One Modbus source (``more``: its keys, ``backoff`` the sink's) and an MQTT sink."""
    backoff = more.pop("backoff", "100ms")
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(path.parent / "data")},
        "sources": [_source("plc", modbus, **more)],
        "sinks": [{"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": broker,
                   "tls": "off", "commands": commands, "backoff": backoff},
                  {"type": "jsonl", "name": "local", "path": "audit.jsonl"}],
        "writes": {"mode": "on", "min_interval": "0s"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def test_a_command_running_when_its_sink_restarts_is_written_and_audited(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The device holds the write while a reload restarts the MQTT sink that took it:
    the write still ends on the device, and its audit event reaches the other sink."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, seen = tmp_path / "agent.yaml", Seen()
    held, release = asyncio.Event(), asyncio.Event()

    async with modbus_plant(port, held_at(10, held, release)) as (server, _):
        _mqtt(path, broker.port, port, "on", timeout="20s")
        async with _agent(path, broker, seen) as requester:
            await requester.send("slow", "plc.sp_u16", 12.5)
            async with asyncio.timeout(30):
                await held.wait()
            _mqtt(path, broker.port, port, "on", timeout="20s", backoff="200ms")
            await _reload(caplog, 1)
            release.set()
            audit = tmp_path / "data" / "audit.jsonl"
            await _until(lambda: "slow" in audit.read_text() if audit.exists() else False, 30)
    (event,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (event["id"], event["status"], event["read_back"]) == ("slow", "done", 12.5)
    assert await server_words(server, 3, 10, 1) == [125]
    assert "reloaded: sink cloud changed" in caplog.text
