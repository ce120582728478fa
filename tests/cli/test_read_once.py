"""``edge-agent read-once`` against the simulated plant: one JSON line per signal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import yaml

from edge_agent.sim.plant import Plant
from tests.conftest import free_port


def _read_once(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edge_agent", "read-once", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


async def test_prints_one_json_line_per_signal(tmp_path: Path) -> None:
    async with Plant(scenario="normal", opcua=False) as plant:
        config = tmp_path / "agent.yaml"
        config.write_text(yaml.safe_dump({"sources": plant.source_configs("500ms")}))
        result = await asyncio.to_thread(_read_once, config)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    signals = {r["signal"] for r in records}
    assert {"pump1.motor_current", "pump1.heartbeat", "probe.rms", "probe.temp"} <= signals
    assert all(set(r) == {"signal", "ts", "value", "quality"} for r in records)
    assert all(r["quality"] == "good" and isinstance(r["value"], float) for r in records)


def test_a_dead_source_exits_2(tmp_path: Path) -> None:
    source = {
        "type": "modbus",
        "name": "gone",
        "url": f"tcp://127.0.0.1:{free_port()}",
        "timeout": "500ms",
        "registers": [{"name": "x", "address": 0}],
    }
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"sources": [source]}))
    result = _read_once(config)
    assert result.returncode == 2
    assert "gone: failed:" in result.stderr and result.stdout == ""
