"""SIGKILL of the real agent at random moments, alerts open: none orphaned, none swallowed.

A Modbus register drives a threshold rule; the test turns the condition on and off
(sometimes while the agent is down) and kills ``edge-agent run`` with SIGKILL at
random moments, 50 times. What the agent stored (its outbox's open-alert state)
and what it delivered (a JSONL sink) must always agree with the plant:

- when the agent has been watching long enough, an alert is open exactly while
  the condition holds (none orphaned, none swallowed);
- no episode is raised twice, every clear closes a raise of the same id;
- an ``event_id`` never names two different events (redeliveries are identical).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.sources.modbus.server import device, tcp_peer

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("EDGE_AGENT_KILLS", "50"))
HOT, COLD = 900, 100


def _config(folder: Path, port: int) -> Path:
    data = {
        "agent": {"id": "gw-kill", "data_dir": str(folder / "data")},
        "sources": [
            {"type": "modbus", "name": "plc", "url": f"tcp://127.0.0.1:{port}",
             "interval": "100ms", "registers": [{"name": "temp", "address": 0}]}
        ],
        "twin": {"flush_interval": "100ms"},
        # The plant flips every few seconds: chattering by design, which would hold
        # the alert open (detect.alarms); this test is about restarts, so it is off.
        "detect": {"interval": "100ms", "alarms": {"chatter_count": 100000},
                   "rules": [{"name": "hot", "type": "threshold", "signal": "plc.temp",
                              "above": 500, "asset": "oven"}]},
        "outbox": {"sync": "full"},
        "sinks": [{"type": "jsonl", "name": "local", "path": "events.jsonl"}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _spawn(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent", "run", "-c", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _open_alerts(data: Path) -> list[str]:
    db = data / "outbox.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT id FROM open_alerts")]
        except sqlite3.OperationalError:  # created by the agent's first start
            return []


async def _settled(data: Path, hot: bool, proc: asyncio.subprocess.Process) -> None:
    """Wait until the stored state follows the plant (the agent watched long enough)."""
    async with asyncio.timeout(30):
        while bool(await asyncio.to_thread(_open_alerts, data)) != hot:
            assert proc.returncode is None, "the agent exited"
            await asyncio.sleep(0.1)


def _events(data: Path) -> list[dict[str, Any]]:
    path = data / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def _undelivered(data: Path) -> set[str]:
    """Ids raised in the sink's file without their clear (whole lines only: the agent may
    be writing the last one)."""
    path = data / "events.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    alerts = [e for e in map(json.loads, filter(None, lines)) if e["type"] == "alert"]
    raised = {e["id"] for e in alerts if e["state"] == "raised"}
    return raised - {e["id"] for e in alerts if e["state"] == "cleared"}


async def _delivered(data: Path, within: float = 30.0) -> None:
    """Wait until the sink has every raise's clear (the checks below say what is missing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if loop.time() > deadline or not await asyncio.to_thread(_undelivered, data):
            return
        await asyncio.sleep(0.1)


def _check_events(events: list[dict[str, Any]]) -> None:
    alerts = [e for e in events if e["type"] == "alert"]
    by_event: dict[str, dict[str, Any]] = {}
    for event in alerts:
        body = {k: v for k, v in event.items() if k != "seq"}
        assert by_event.setdefault(event["event_id"], body) == body, "one event_id, two events"
    open_now: str | None = None
    states: dict[str, list[str]] = defaultdict(list)
    for event in sorted(by_event.values(), key=lambda e: (e["window_end"], e["state"] != "raised")):
        states[event["id"]].append(event["state"])
        if event["state"] == "raised":
            assert open_now is None, "a second raise while an episode was open"
            open_now = event["id"]
        else:
            assert open_now == event["id"], "a clear without its raise"
            open_now = None
    assert all(s == ["raised", "cleared"] for s in states.values()), states
    assert open_now is None, "an orphaned raise"


async def test_sigkill_at_random_moments_orphans_and_swallows_no_alert(tmp_path: Path) -> None:
    rng = random.Random(20261207)
    port = free_port()
    config, data = _config(tmp_path, port), tmp_path / "data"
    hot = False
    spawned: list[asyncio.subprocess.Process] = []
    try:
        async with tcp_peer([device(1)], port) as plc:
            await plc.set(1, "holding", 0, [COLD])
            for i in range(KILLS):
                if rng.random() < 0.4:  # the plant changes while the agent is down
                    hot = not hot
                    await plc.set(1, "holding", 0, [HOT if hot else COLD])
                proc = await _spawn(config)
                spawned.append(proc)
                if i % 5 == 4:  # now and then: let it catch up, then check what it stored
                    await _settled(data, hot, proc)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                if rng.random() < 0.3:  # ... and the plant changes while it runs
                    hot = not hot
                    await plc.set(1, "holding", 0, [HOT if hot else COLD])
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
            await plc.set(1, "holding", 0, [COLD])  # the episode ends; a clean last run
            proc = await _spawn(config)
            spawned.append(proc)
            await _settled(data, False, proc)
            await _delivered(data)  # the sink delivers the clear
            proc.send_signal(signal.SIGTERM)
            _, stderr = await proc.communicate()
    finally:  # a failed check must not leave an agent running
        for left in spawned:
            if left.returncode is None:
                left.kill()
                await left.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    events = _events(data)
    _check_events(events)
    assert sum(e["type"] == "alert" and e["state"] == "raised" for e in events) >= KILLS // 10
