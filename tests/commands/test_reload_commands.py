"""SIGHUP changes the sources while an MQTT sink takes commands: the writes follow.

The whole agent (``run_agent``) polls pymodbus servers and takes JSON commands from
mosquitto. A reload that adds a second source makes its registers writable at once
(the value is read back from that server's memory); a reload that removes a source
makes its signals unknown to commands, refused with the usual message; ``writes.mode:
off`` by reload refuses every command from then on; a write in
flight on a source that a reload restarts ends on it, done, before the source stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.types import Quality
from tests.commands.modbus_plant import REGISTERS, held_at, modbus_plant, server_words
from tests.conftest import free_port
from tests.forward.conftest import Mosquitto
from tests.test_agent import Seen, _until


def _source(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"type": "modbus", "name": name, "url": f"tcp://127.0.0.1:{port}",
            "interval": "200ms", "registers": REGISTERS, **extra}  # fmt: skip


def _write(path: Path, broker: int, sources: list[dict[str, Any]], **more: Any) -> None:
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(path.parent / "data")},
        "sources": sources,
        "sinks": [{"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": broker,
                   "tls": "off", "commands": "on", "backoff": "100ms"}],
        "writes": {"mode": "on", "min_interval": "0s"},
        **more,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data, sort_keys=False))


class Requester:
    """An upstream client: sends commands, collects the agent's replies by id."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.replies: dict[str, dict[str, Any]] = {}
        self.online = asyncio.Event()
        self.statuses = 0
        """``online`` statuses seen: one per connect of the agent's sink."""

    async def read_forever(self) -> None:
        async for message in self.client.messages:
            if str(message.topic) == "edge-agent/gw1/status":
                if b"online" in bytes(message.payload):
                    self.statuses += 1
                    self.online.set()
            elif str(message.topic).endswith("/cmd/reply"):
                reply = json.loads(bytes(message.payload))
                self.replies[reply["id"]] = reply

    async def send(self, id_: str, signal: str, value: float) -> None:
        body = {"v": 1, "type": "write", "id": id_, "signal": signal, "value": value}
        await self.client.publish("edge-agent/gw1/cmd", json.dumps(body), qos=1)

    async def command(self, id_: str, signal: str, value: float) -> dict[str, Any]:
        await self.send(id_, signal, value)
        await _until(lambda: id_ in self.replies, 30)
        return self.replies[id_]


@contextlib.asynccontextmanager
async def _agent(path: Path, broker: Mosquitto, seen: Seen) -> AsyncIterator[Requester]:
    agent = asyncio.create_task(run_agent(load_config(path), seen))
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="host") as client:
        await client.subscribe("edge-agent/gw1/#", qos=1)
        requester = Requester(client)
        reader = asyncio.create_task(requester.read_forever())
        try:
            async with asyncio.timeout(30):
                await requester.online.wait()
            yield requester
        finally:
            for task in (reader, agent):
                task.cancel()
            await asyncio.gather(reader, agent, return_exceptions=True)


async def _reload(caplog: pytest.LogCaptureFixture, done: int) -> None:
    """SIGHUP; wait until the ``done``-th reload is logged, and none refused."""

    def said() -> bool:
        lines = [r for r in caplog.records if "reloaded:" in r.getMessage()]
        return len(lines) >= done or "not reloaded" in caplog.text

    os.kill(os.getpid(), signal.SIGHUP)
    await _until(said, 30)
    assert "not reloaded" not in caplog.text


def _polled(seen: Seen, source: str, since: int = 0) -> bool:
    """A good sample of ``source`` among those seen after the first ``since``."""
    prefix = f"{source}."
    return any(
        s.signal.startswith(prefix) and s.quality == Quality.GOOD for s in seen.samples[since:]
    )


async def test_a_source_added_by_reload_takes_commands_and_a_removed_one_refuses_them(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, seen, second = tmp_path / "agent.yaml", Seen(), free_port()
    async with modbus_plant(port) as (one, _), modbus_plant(second) as (two, _):
        _write(path, broker.port, [_source("plc", port)])
        async with _agent(path, broker, seen) as requester:
            before = await requester.command("before", "plc2.sp_multi", 55)
            _write(path, broker.port, [_source("plc", port), _source("plc2", second)])
            await _reload(caplog, 1)
            await _until(lambda: _polled(seen, "plc2"), 30)  # connected: writes can go
            added = await requester.command("added", "plc2.sp_multi", 55)
            assert await server_words(two, 3, 40, 1) == [55]
            kept = await requester.command("kept", "plc.sp_multi", 66)
            _write(path, broker.port, [_source("plc2", second)])
            await _reload(caplog, 2)
            removed = await requester.command("removed", "plc.sp_multi", 77)
            off = [_source("plc2", second)]
            _write(path, broker.port, off, writes={"mode": "off"})  # writes switched off
            await _reload(caplog, 3)
            refused = await requester.command("off", "plc2.sp_multi", 88)
    assert (before["status"], before["reason"]) == ("refused", "unknown signal 'plc2.sp_multi'")
    assert (added["status"], added["read_back"]) == ("done", 55.0)
    assert (kept["status"], kept["read_back"]) == ("done", 66.0)
    assert (removed["status"], removed["reason"]) == ("refused", "unknown signal 'plc.sp_multi'")
    assert await server_words(one, 3, 40, 1) == [66]  # nothing written after the removal
    assert refused["reason"] == "writes are off in this agent's config (writes.mode)"
    assert await server_words(two, 3, 40, 1) == [55]
    assert "reloaded: writes changed" in caplog.text
    assert "reloaded: source plc2 added" in caplog.text
    assert "reloaded: source plc removed" in caplog.text


async def test_a_write_in_flight_ends_on_its_source_before_a_reload_restarts_it(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The device holds the write until the reload says it waits for it: the reply is
    ``done`` (a source stopped under the write would have ended it ``failed``)."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, seen = tmp_path / "agent.yaml", Seen()
    held, release = asyncio.Event(), asyncio.Event()

    async with modbus_plant(port, held_at(10, held, release)) as (server, _):
        _write(path, broker.port, [_source("plc", port, timeout="20s")])
        async with _agent(path, broker, seen) as requester:
            await requester.send("slow", "plc.sp_u16", 12.5)
            async with asyncio.timeout(30):
                await held.wait()
            _write(path, broker.port, [_source("plc", port, timeout="20s", interval="300ms")])
            os.kill(os.getpid(), signal.SIGHUP)
            await _until(lambda: "waiting for the write(s) in flight" in caplog.text, 30)
            assert "slow" not in requester.replies and "reloaded:" not in caplog.text
            release.set()
            await _until(lambda: "slow" in requester.replies, 30)
            await _until(lambda: "reloaded:" in caplog.text, 30)
            since = len(seen.samples)
            await _until(lambda: _polled(seen, "plc", since), 30)  # the new source is up
            after = await requester.command("after", "plc.sp_u16", 20)
    slow = requester.replies["slow"]
    assert (slow["status"], slow["read_back"]) == ("done", 12.5)
    assert (after["status"], after["read_back"]) == ("done", 20.0)
    assert await server_words(server, 3, 10, 1) == [200]
    assert "waiting for the write(s) in flight to plc.sp_u16" in caplog.text
    assert "reloaded: source plc changed" in caplog.text


async def test_a_write_still_running_when_the_wait_ends_is_answered_failed(
    tmp_path: Path, port: int, broker: Mosquitto, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A device that never answers the write: past ``SETTLE`` the source restarts anyway,
    and the command still gets its one reply, ``failed``, instead of none."""
    monkeypatch.setattr("edge_agent.reload.SETTLE", 0.5)
    caplog.set_level(logging.INFO, logger="edge_agent")
    path, seen = tmp_path / "agent.yaml", Seen()
    held, never = asyncio.Event(), asyncio.Event()

    async with modbus_plant(port, held_at(10, held, never)):
        _write(path, broker.port, [_source("plc", port, timeout="20s")])
        async with _agent(path, broker, seen) as requester:
            await requester.send("stuck", "plc.sp_u16", 12.5)
            async with asyncio.timeout(30):
                await held.wait()
            _write(path, broker.port, [_source("plc", port, timeout="20s", interval="300ms")])
            os.kill(os.getpid(), signal.SIGHUP)
            await _until(lambda: "stuck" in requester.replies, 30)
            await _until(lambda: "reloaded:" in caplog.text, 30)
            never.set()
    stuck = requester.replies["stuck"]
    assert (stuck["status"], stuck["read_back"]) == ("failed", None)
    assert stuck["reason"] == f"plc: connection to tcp://127.0.0.1:{port} lost"
    assert "1 write(s) still running after 0 s" in caplog.text
