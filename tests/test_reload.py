"""SIGHUP reloads the config: checked first, then only the changed parts restart.

Under load (the simulated pump on a real pymodbus server, polled every 250 ms, a
rule raising and clearing an alert delivered to a JSONL file), a reload that adds
a rule and a sink loses no sample and no alert, and the alert open across it keeps
its id; a broken file leaves the old config running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import parse_config
from edge_agent.reload import plan_reload
from edge_agent.sim.plant import Plant
from edge_agent.twin.store import SignalStore
from tests.test_agent import RULES, WEAR, Seen, _lines, _until

NEVER = {"name": "current-absurd", "type": "threshold", "signal": "pump1.motor_current",
         "asset": "pump1", "above": 1.0e6}  # fmt: skip


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _base(folder: Path, sources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "agent": {"id": "gw-test", "data_dir": str(folder)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": list(RULES)},
        "sources": sources,
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }


def _hangup() -> None:
    os.kill(os.getpid(), signal.SIGHUP)


async def test_reload_under_load_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    seen, path = Seen(), tmp_path / "agent.yaml"
    async with Plant(scenario=WEAR, opcua=False, serial=False, speed=4.0) as plant:
        data = _base(tmp_path, plant.source_configs("250ms"))
        _write(path, data)
        from edge_agent.config import load_config

        agent = asyncio.create_task(run_agent(load_config(path), seen))
        try:
            await _until(lambda: bool(seen.alerts) or agent.done(), 40)  # bearing-hot open
            # A broken file first: refused, the old config keeps running.
            path.write_text(path.read_text() + "twin:\n  max_sampels: 5\n")
            _hangup()
            await _until(lambda: "not reloaded" in caplog.text, 20)
            # Then a good one: one rule more (the detector restarts), one sink more.
            data["detect"]["rules"] = [*RULES, NEVER]
            data["sinks"].append({"type": "jsonl", "name": "second", "path": "second.jsonl"})
            _write(path, data)
            _hangup()
            await _until(lambda: "reloaded:" in caplog.text, 20)
            await _until(lambda: _cleared(seen) or agent.done(), 40)
            await _until(lambda: len(_lines(tmp_path / "alerts.jsonl")) >= len(seen.alerts), 10)
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    refused = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(refused) == 1 and "given twice" in refused[0].getMessage()
    assert "\n" not in refused[0].getMessage()  # one line
    reloaded = [r.getMessage() for r in caplog.records if "reloaded:" in r.getMessage()]
    # Only what changed restarted: the Modbus source and the first sink kept running.
    assert reloaded and reloaded[0].endswith("sink second added, detector restarted")
    _assert_alerts_kept(tmp_path, seen)
    _assert_samples_kept(tmp_path, seen)


def _cleared(seen: Seen) -> bool:
    return any(str(a.state) == "cleared" for a in seen.alerts)


def _assert_alerts_kept(folder: Path, seen: Seen) -> None:
    raised, cleared = seen.alerts[0], seen.alerts[1]
    # The alert open across the reload is cleared under its id, never raised again.
    assert (raised.cause, str(raised.state)) == ("bearing-hot", "raised")
    assert (cleared.id, str(cleared.state)) == (raised.id, "cleared")
    delivered = [json.loads(line) for line in _lines(folder / "alerts.jsonl")]
    assert [(d["id"], d["state"]) for d in delivered] == [(a.id, str(a.state)) for a in seen.alerts]
    # The sink added by the reload gets what was raised or cleared after it.
    second = [json.loads(line) for line in _lines(folder / "second.jsonl")]
    assert (raised.id, "cleared") in [(d["id"], d["state"]) for d in second]


def _assert_samples_kept(folder: Path, seen: Seen) -> None:
    polled = [s for s in seen.samples if s.signal == "pump1.bearing_temp"]
    from edge_agent.twin.config import TwinConfig

    store = SignalStore.open(folder / "twin.db", TwinConfig(), readonly=True)
    try:
        stored = store.history("pump1.bearing_temp", polled[0].ts - 1)
    finally:
        store.close()
    # Every sample handed to the recorder, before, during and after the reloads, is in the twin.
    assert [s.ts for s in stored] == [s.ts for s in polled]


def _parsed(folder: Path, data: dict[str, Any]) -> Any:
    path = folder / "agent.yaml"
    return parse_config(yaml.safe_dump(data), path)


def test_plan_names_what_restarts_and_what_needs_a_restart(tmp_path: Path) -> None:
    modbus = {"type": "modbus", "name": "press", "url": "tcp://127.0.0.1:5020",
              "registers": [{"name": "t", "address": 0}]}  # fmt: skip
    old = _base(tmp_path, [modbus])
    old["detect"]["rules"] = []
    new = json.loads(json.dumps(old))
    new["sources"][0]["interval"] = "5s"
    new["sinks"] = [{"type": "jsonl", "name": "other", "path": "o.jsonl"}]
    plan = plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, new))
    assert plan.describe() == "source press changed, sink other added, sink local removed"
    assert not plan.needs_restart and not plan.detector
    new["twin"]["flush_interval"] = "1s"
    new["web"] = {"listen": "127.0.0.1:8999"}
    plan = plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, new))
    assert plan.needs_restart == ["twin", "web"]
    assert plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, old)).describe() == "no change"


def test_sighup_before_the_agent_runs_does_not_end_it(tmp_path: Path) -> None:
    # The service's unit sends HUP for `systemctl reload`; its default action would kill.
    import subprocess
    import sys

    path = tmp_path / "agent.yaml"
    _write(path, {"agent": {"id": "gw", "data_dir": str(tmp_path)}})
    child = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(path)],
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "outbox.db").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        child.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    assert child.returncode == 0
    assert "SIGHUP:" in err  # said what it did, in one line


def test_sources_and_sinks_reload_under_sparkplug_and_commands(
    tmp_path: Path,
) -> None:
    modbus = {"type": "modbus", "name": "press", "url": "tcp://127.0.0.1:5020",
              "registers": [{"name": "t", "address": 0}]}  # fmt: skip
    scada = {"type": "sparkplug", "name": "scada", "servers": ["127.0.0.1:1883"], "tls": "off",
             "group_id": "plant"}  # fmt: skip
    old = _base(tmp_path, [modbus])
    old["detect"]["rules"], old["sinks"] = [], [scada]
    new = json.loads(json.dumps(old))
    new["sources"].append(dict(modbus, name="pump"))
    plan = plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, new))
    assert plan.sources.added == ["pump"] and not plan.needs_restart
    # The commands' executor follows the sources (tests/commands/test_reload_commands.py).
    old["sinks"] = new["sinks"] = [dict(scada, commands="on")]
    plan = plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, new))
    assert plan.sources.added == ["pump"] and not plan.needs_restart
    # The sink itself restarts by name (tests/commands/test_reload_sinks.py).
    new["sinks"] = [dict(scada, commands="on", data_interval="2s")]
    plan = plan_reload(_parsed(tmp_path, old), _parsed(tmp_path, new))
    assert plan.sinks.changed == ["scada"] and not plan.needs_restart


def _stored(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(folder / "alerts.jsonl")]


def _always(name: str) -> dict[str, Any]:
    """A rule that holds from the first sample and raises 3 s later."""
    return {"name": name, "type": "threshold", "signal": "pump1.motor_current",
            "asset": "pump1", "above": -1000.0, "for": "3s"}  # fmt: skip


async def test_an_alert_held_while_the_outbox_refuses_survives_a_detector_swap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the outbox's write lock when ``hot`` is raised and when the
    detector is swapped: the raise waits in memory, and the new detector must take it
    over (not raise ``hot`` again under a new id). ``later``, added by the reload, holds
    as long as ``hot``: once it is raised, a detector that missed the held raise has
    raised ``hot`` again too."""
    import sqlite3

    from edge_agent.config import load_config

    caplog.set_level(logging.INFO, logger="edge_agent")
    seen, path, outbox = Seen(), tmp_path / "agent.yaml", tmp_path / "outbox.db"
    async with Plant(scenario="normal", opcua=False, serial=False) as plant:
        data = _base(tmp_path, plant.source_configs("200ms"))
        data["detect"]["rules"] = [_always("hot")]
        _write(path, data)
        agent = asyncio.create_task(run_agent(load_config(path), seen))
        lock = sqlite3.connect(outbox, isolation_level=None, check_same_thread=False)
        try:
            await _until(lambda: bool(seen.samples) or agent.done(), 20)
            await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")  # the outbox refuses
            await _until(lambda: "holding them in memory" in caplog.text, 30)
            data["detect"]["rules"] = [_always("hot"), _always("later")]
            _write(path, data)
            _hangup()
            await _until(lambda: "reloaded:" in caplog.text, 60)
            await _until(lambda: any(a.cause == "later" for a in seen.alerts), 60)
            lock.execute("ROLLBACK")  # the outbox takes writes again
            await _until(lambda: any(d["cause"] == "later" for d in _stored(tmp_path)), 30)
        finally:
            lock.close()
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    (held,) = [a for a in seen.alerts if a.cause == "hot"]  # raised once, by the old detector
    delivered = [(d["cause"], d["state"], d["id"]) for d in _stored(tmp_path)]
    assert delivered == [("hot", "raised", held.id), ("later", "raised", delivered[1][2])]
    assert "reloaded: detector restarted" in caplog.text
