"""``edge-agent sim``: serving the plant for a while, exporting CSV, bad arguments."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from edge_agent.cli.sim import register
from edge_agent.sim.physics import SIGNAL_NAMES, read_csv


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent")
    parser.add_argument("--log-level", default=None)
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_sim_serves_prints_where_and_stops_after_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["sim", "--scenario", "demo", "--no-opcua", "--duration", "1s", "--speed", "2"]
    assert _run([*argv, "--status-every", "300ms"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Modbus TCP  tcp://127\.0\.0\.1:\d+  unit 1", out)
    assert "0-1    float32  motor_current" in out and "10     int16    bearing_temp_x10" in out
    assert re.search(r"serial probe  /\S+/probe", out)
    assert "20 - 40      bearing_wear" in out
    assert "- type: modbus" in out and "type: opcua" not in out
    assert re.search(r"t=\s+\d+ s  current\s+[\d.]+ A", out)
    assert "plant clock x2" in out
    assert "stopping after 2s" in out  # plant time: one wall second at speed 2


def test_sim_exports_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "normal.csv"
    argv = ["sim", "--scenario", "normal", "--out", str(path), "--duration", "1m", "--step", "2s"]
    assert _run(argv) == 0
    series = read_csv(path)
    assert list(series) == ["t", *SIGNAL_NAMES] and series["t"].size == 30
    assert "30 rows, 11 signals" in capsys.readouterr().out


def test_unknown_scenario_and_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["sim", "--scenario", "flood", "--out", "x.csv"]) == 2
    assert "known: commissioning, demo, normal" in capsys.readouterr().err
    assert _run(["sim", "--speed", "0"]) == 2
    assert "--speed must be above 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(["sim", "--duration", "10x"])
    assert "expected a duration" in capsys.readouterr().err
