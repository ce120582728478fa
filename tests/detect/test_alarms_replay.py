"""Alarm quality on the simulated pump skid, through ``edge-agent replay`` (the live path)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_agent.cli.detect import replay_command
from edge_agent.sim.physics import simulate

DEMO = Path(__file__).resolve().parents[2] / "edge_agent" / "sim" / "demo_pump.onnx"
SIGNALS = ["motor_current", "bearing_temp", "vibration_rms", "discharge_pressure", "flow"]
T0 = 1_800_000_000.0


def plant_csv(path: Path, stop: slice) -> None:
    """15 minutes of normal running, with the pump switched off during ``stop`` (seconds)."""
    series = simulate(900, seed=11, scenario="normal")
    for name in ("motor_current", "vibration_rms", "discharge_pressure", "flow"):
        series[name][stop] = 0.0
    lines = ["timestamp," + ",".join(SIGNALS)]
    for i, t in enumerate(series["t"]):
        lines.append(f"{T0 + t:.1f}," + ",".join(f"{series[s][i]:.6g}" for s in SIGNALS))
    path.write_text("\n".join(lines) + "\n")


def replay(tmp_path: Path, extra: str) -> list[dict[str, object]]:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "detect:\n  assets:\n    - name: pump1\n"
        f"      model: {DEMO}\n"
        f"      signals: [{', '.join('pump1.' + s for s in SIGNALS)}]\n" + extra
    )
    args = argparse.Namespace(
        config=config,
        asset="pump1",
        data=tmp_path / "plant.csv",
        calibrate_rows=0,
        out=tmp_path / "out.csv",
        alerts=tmp_path / "alerts.jsonl",
    )
    assert replay_command(args) == 0
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_stopped_pump_raises_nothing_with_its_run_state(tmp_path: Path) -> None:
    plant_csv(tmp_path / "plant.csv", slice(400, 600))
    # Without a run-state the stop looks like a severe fault: raised, escalated, cleared.
    blind = replay(tmp_path, "")
    assert [e["state"] for e in blind][:1] == ["raised"]
    assert any(e["severity"] == "critical" for e in blind)
    raised = blind[0]["extra"]
    assert isinstance(raised, dict) and set(raised["evidence"]["values"]) <= {
        "pump1." + s for s in SIGNALS
    }
    # With it, the stopped period is neither scored nor alarmed, before or after.
    aware = replay(tmp_path, "      run_state: pump1.motor_current > 2\n")
    assert aware == []
    scores = np.genfromtxt(tmp_path / "out.csv", delimiter=",", names=True)
    assert np.isnan(scores["score"][420:600]).all()
    assert np.isfinite(scores["score"][700:]).all()
