"""The whole agent against the simulated plant: alerts end to end, outages, SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.errors import ConfigError, StoreError
from edge_agent.sim.plant import Plant
from edge_agent.sim.scenario import Fault, Scenario
from edge_agent.twin.store import SignalStore
from edge_agent.types import Alert, Quality, Sample
from tests.conftest import free_port

RULES = [
    {
        "name": "bearing-hot",
        "type": "threshold",
        "signal": "pump1.bearing_temp",
        "asset": "pump1",
        "above": 55.0,
        "hysteresis": 2.0,
        "for": "1s",
    }
]

WEAR = Scenario(
    "wear",
    (Fault("bearing_wear", start=8.0, end=28.0, ramp_s=6.0, release_s=1.0),),
    40.0,
    "the demo's bearing wear 12 s earlier: its 20 s of normal running before the fault are"
    " 5 s of waiting at speed 4, and its other faults touch no signal RULES watches",
)
"""``bearing-hot`` raises about 4 s (wall clock, speed 4) after the plant starts, clears at 7 s."""


class Seen:
    """Observer that remembers what flowed past."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.alerts: list[Alert] = []

    def on_samples(self, batch: Sequence[Sample]) -> None:
        self.samples.extend(batch)

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        self.alerts.extend(alerts)


def _config(folder: Path, sources: list[dict[str, Any]], rules: list[dict[str, Any]]) -> Path:
    data = {
        "agent": {"id": "gw-test", "data_dir": str(folder)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": rules},
        "sources": sources,
        "sinks": [{"type": "jsonl", "name": "local", "path": str(folder / "alerts.jsonl")}],
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _until(predicate: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_rule_alert_raised_cleared_and_delivered(tmp_path: Path) -> None:
    seen = Seen()
    async with Plant(scenario=WEAR, opcua=False, serial=False, speed=4.0) as plant:
        config = load_config(_config(tmp_path, plant.source_configs("250ms"), RULES))
        agent = asyncio.create_task(run_agent(config, seen))
        try:
            await _until(lambda: len(seen.alerts) >= 2 or agent.done(), 40)
            await _until(lambda: len(_lines(tmp_path / "alerts.jsonl")) >= 2, 10)
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    states = [(a.cause, str(a.state)) for a in seen.alerts[:2]]
    assert states == [("bearing-hot", "raised"), ("bearing-hot", "cleared")]
    assert seen.alerts[0].id == seen.alerts[1].id
    delivered = [json.loads(line) for line in _lines(tmp_path / "alerts.jsonl")]
    assert [(d["type"], d["state"], d["id"]) for d in delivered[:2]] == [
        ("alert", "raised", seen.alerts[0].id),
        ("alert", "cleared", seen.alerts[0].id),
    ]
    store = SignalStore.open(tmp_path / "twin.db", config.twin, readonly=True)
    try:
        assert "pump1.bearing_temp" in store.latest()
    finally:
        store.close()


async def test_dead_device_logged_once_then_reconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen = Seen()
    port = free_port()
    source = {
        "type": "modbus",
        "name": "press1",
        "url": f"tcp://127.0.0.1:{port}",
        "interval": "200ms",
        "registers": [{"name": "current", "address": 0, "data_type": "float32"}],
    }
    config = load_config(_config(tmp_path, [source], []))
    agent = asyncio.create_task(run_agent(config, seen))
    try:
        await asyncio.sleep(3.0)
        assert not agent.done()
        polled = [s for s in seen.samples if not s.signal.startswith("detect.")]
        assert {(s.signal, s.quality, s.value) for s in polled} == {
            ("press1.current", Quality.BAD, None),  # marked BAD while the link is down
            ("link.press1", Quality.GOOD, 0.0),
        }
        async with Plant(scenario="normal", opcua=False, serial=False, modbus_port=port):
            await _until(lambda: _polled_value(seen, "press1.current"), 30)
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
    assert caplog.text.count("press1: connection lost") == 1
    assert caplog.text.count("press1: reconnected after") == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_flushes_and_stops(tmp_path: Path, signum: int) -> None:
    notify = tmp_path / "notify.sock"
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "sim",
            "--scenario",
            "normal",
            "--no-opcua",
            "--no-serial",
            "--modbus-port",
            str(port),
            "--status-every",
            "0s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    source = {
        "type": "modbus",
        "name": "pump1",
        "url": f"tcp://127.0.0.1:{port}",
        "interval": "100ms",
        "registers": [{"name": "motor_current", "address": 0, "data_type": "float32"}],
    }
    path = _config(tmp_path, [source], [])
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(30)
        # systemd's WatchdogSec=1s: the agent pings every 0.5 s.
        env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
        env.pop("WATCHDOG_PID", None)
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(path)], env=env
        )
        try:
            assert sock.recv(64) == b"READY=1"
            time.sleep(2.0)
            agent.send_signal(signum)
            assert agent.wait(timeout=10) == 0
            messages: list[bytes] = []
            while not messages or messages[-1] != b"STOPPING=1":
                messages.append(sock.recv(64))
            assert messages.count(b"WATCHDOG=1") >= 2
            assert set(messages) == {b"WATCHDOG=1", b"STOPPING=1"}
        finally:
            agent.kill()
            server.terminate()
            server.wait(timeout=10)
    store = SignalStore.open(tmp_path / "twin.db", load_config(path).twin, readonly=True)
    try:
        history = store.history("pump1.motor_current", 0.0)
    finally:
        store.close()
    # Polled every 100 ms for about 2 s: the samples of the last flush interval are there too.
    assert len(history) >= 10


async def test_telemetry_summaries_reach_a_sink_with_telemetry_on(tmp_path: Path) -> None:
    seen = Seen()
    async with Plant(scenario="normal", opcua=False, serial=False) as plant:
        path = _config(tmp_path, plant.source_configs("250ms"), [])
        data = yaml.safe_load(path.read_text())
        # A relative JSONL path lives in the data folder.
        data["sinks"] = [
            {
                "type": "jsonl",
                "name": "local",
                "path": "out.jsonl",
                "telemetry": "on",
                "telemetry_interval": "1s",
            }
        ]
        path.write_text(yaml.safe_dump(data))
        agent = asyncio.create_task(run_agent(load_config(path), seen))
        try:
            await _until(
                lambda: any('"telemetry"' in line for line in _lines(tmp_path / "out.jsonl")), 30
            )
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    summaries = [json.loads(x) for x in _lines(tmp_path / "out.jsonl") if '"telemetry"' in x]
    assert {"pump1.motor_current", "pump1.flow"} <= {s["signal"] for s in summaries}
    first = summaries[0]
    assert first["count"] >= 1 and first["min"] <= first["mean"] <= first["max"]


def _polled_value(seen: Seen, signal: str) -> bool:
    return any(s.value is not None for s in seen.samples if s.signal == signal)


def _sections_config(folder: Path, **sections: Any) -> Path:
    data = {
        "agent": {"id": "gw-review", "data_dir": str(folder / "data")},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms"},
        **sections,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_locked_outbox_does_not_stop_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process (a backup, a CLI tool) holds the outbox's write lock: the telemetry
    write it refuses is logged, and once the lock is gone telemetry is queued again by the
    same running agent (a refused write that ended the agent would never say so)."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    sink = {"type": "jsonl", "name": "local", "path": "out.jsonl", "telemetry": "on",
            "telemetry_interval": "1s"}  # fmt: skip
    config = load_config(_sections_config(tmp_path, sinks=[sink]))
    agent = asyncio.create_task(run_agent(config))
    try:
        await _until(lambda: " running: " in caplog.text or agent.done(), 20)  # READY
        other = sqlite3.connect(tmp_path / "data" / "outbox.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            await _until(lambda: "telemetry not queued" in caplog.text or agent.done(), 30)
        finally:
            other.execute("ROLLBACK")
            other.close()
        await _until(lambda: "telemetry queued again" in caplog.text or agent.done(), 30)
        assert not agent.done(), f"the agent stopped: {agent.exception()!r}"
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)


async def test_the_collector_is_back_on_once_the_agent_runs(tmp_path: Path) -> None:
    # `run` starts with the garbage collector off (cli/main.py); the agent turns it on
    # at READY, or a running agent would never free a reference cycle.
    config = load_config(_sections_config(tmp_path))
    gc.disable()
    agent = asyncio.create_task(run_agent(config))
    try:
        await _until(lambda: gc.isenabled() or agent.done(), 20)
        assert gc.isenabled() and not agent.done()
    finally:
        gc.enable()
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)


async def test_sigterm_during_startup_leaves_no_open_twin(tmp_path: Path) -> None:
    """Fine: a cancel right after the start (while the worker opens files) cleans up."""
    config = load_config(_sections_config(tmp_path))
    agent = asyncio.create_task(run_agent(config))
    await asyncio.sleep(0)
    agent.cancel()
    await asyncio.gather(agent, return_exceptions=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    SignalStore.open(tmp_path / "data" / "twin.db", config.twin).close()


def test_config_error_is_not_a_store_error() -> None:
    """Guard: StoreError is not a ConfigError, so cli.main does not catch it (see test_cli)."""
    assert not issubclass(StoreError, ConfigError)
