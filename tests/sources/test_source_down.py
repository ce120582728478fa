"""A PLC outage: its signals go BAD at once, "source down" and bad_quality rules fire within `for`.

The issue this answers: a ``bad_quality`` rule with ``for: 5s`` did not fire during a
20 s outage (silence counted only after a minute) and nothing said a source was down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sim.plant import Plant
from edge_agent.types import AlertState
from tests.conftest import free_port
from tests.test_agent import Seen, _until

pytestmark = pytest.mark.faults


def _config(folder: Path, port: int) -> Path:
    data = {
        "agent": {"id": "gw-down", "data_dir": str(folder)},
        "sources": [
            {"type": "modbus", "name": "press1", "url": f"tcp://127.0.0.1:{port}",
             "interval": "200ms", "asset": "press1",
             "registers": [{"name": "current", "address": 0, "data_type": "float32"}]}
        ],
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "200ms", "source_down": "2s",
                   "rules": [{"name": "current-bad", "type": "bad_quality",
                              "signal": "press1.current", "for": "3s"}]},
        "sinks": [{"type": "jsonl", "name": "local", "path": str(folder / "alerts.jsonl")}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _states(seen: Seen) -> list[tuple[str, AlertState]]:
    return [(a.cause, a.state) for a in seen.alerts]


async def test_an_outage_raises_source_down_and_bad_quality_then_clears_both(
    tmp_path: Path,
) -> None:
    port, seen = free_port(), Seen()
    config = load_config(_config(tmp_path, port))
    assert [r.name for r in config.detect.rules] == ["current-bad", "press1-down"]
    agent = asyncio.create_task(run_agent(config, seen))
    try:
        # Nothing answers on the port: an outage from the start, well under a minute.
        await _until(lambda: len(seen.alerts) >= 2 or agent.done(), 15)
        assert sorted(_states(seen)) == [
            ("current-bad", AlertState.RAISED),
            ("press1-down", AlertState.RAISED),
        ]
        async with Plant(scenario="normal", opcua=False, serial=False, modbus_port=port):
            await _until(lambda: len(seen.alerts) >= 4 or agent.done(), 30)
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
    assert sorted(_states(seen)[2:]) == [
        ("current-bad", AlertState.CLEARED),
        ("press1-down", AlertState.CLEARED),
    ]
    down = next(a for a in seen.alerts if a.cause == "press1-down")
    assert down.asset == "press1" and down.signals == ("link.press1",)


def test_source_down_can_be_turned_off(tmp_path: Path) -> None:
    path = _config(tmp_path, free_port())
    data = yaml.safe_load(path.read_text())
    data["detect"]["source_down"] = "off"
    path.write_text(yaml.safe_dump(data))
    assert [r.name for r in load_config(path).detect.rules] == ["current-bad"]
