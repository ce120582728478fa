"""``edge-agent twin status | export | plot`` against a twin file written by a store."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.cli.twin import register
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample, SignalInfo

NOW = time.time()


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A twin with a fresh, a stale and a BAD signal; 10 minutes of 'pump.flow'."""
    # The exports ask for "the last 2 minutes" of the wall clock: take NOW when the
    # twin is written, not when the module was collected (a full run collects minutes earlier).
    global NOW
    NOW = time.time()
    db = tmp_path_factory.mktemp("cli") / "twin.db"
    store = SignalStore.open(db, TwinConfig())
    store.register(
        [
            SignalInfo("pump.flow", "pump", 60.0, "pump", "m3/h"),
            SignalInfo("pump.temp", "pump", 1.0, "pump", "degC"),
            SignalInfo("pump.state", "pump", 1.0, "pump"),
        ]
    )
    start = NOW - 600
    flow = [Sample("pump.flow", start + i, 10.0 + (i % 7), Quality.GOOD) for i in range(600)]
    for i in range(0, 600, 60):
        store.write(flow[i : i + 60])
    store.write(
        [
            Sample("pump.temp", NOW - 3600, 40.5, Quality.UNCERTAIN),
            Sample.bad("pump.state", NOW - 1),
        ]
    )
    store.close()
    return db


def test_status_lists_value_quality_age_and_staleness(
    twin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["twin", "status", "--db", str(twin)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SIGNAL", "VALUE", "UNIT", "QUALITY", "AGE", "STALE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "m3/h" in rows["pump.flow"] and "good" in rows["pump.flow"]
    assert not rows["pump.flow"].endswith("stale")
    assert rows["pump.temp"].endswith("stale") and "uncertain" in rows["pump.temp"]
    assert run(["twin", "status", "--db", str(twin), "--json"]) == 0
    parsed = {d["signal"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert parsed["pump.flow"]["value"] == 10.0 + 599 % 7
    assert parsed["pump.temp"]["stale"] and parsed["pump.temp"]["age"] > 3000
    assert parsed["pump.state"]["quality"] == "bad" and parsed["pump.state"]["value"] is None


def test_export_csv_and_jsonl_match_the_store(
    twin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SignalStore.open(twin, TwinConfig(), readonly=True)
    want = store.history("pump.flow", NOW - 3600)
    store.close()
    assert run(["twin", "export", "--db", str(twin), "--signal", "pump.flow", "--since", "1h"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [float(r["value"]) for r in rows] == [s.value for s in want]
    assert [float(r["ts"]) for r in rows] == [s.ts for s in want]
    assert rows[0]["time"].endswith("Z") and rows[0]["quality"] == "good"
    out = twin.with_name("flow.jsonl")
    argv = ["twin", "export", "--db", str(twin), "--signal", "pump.flow", "--since", "2m"]
    assert run([*argv, "--format", "jsonl", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert 110 <= len(lines) <= 121 and lines[-1]["value"] == want[-1].value


def test_export_rollups(twin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["twin", "export", "--db", str(twin), "--signal", "pump.flow", "--rollups"]
    assert run([*argv, "--format", "jsonl"]) == 0
    minutes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 9 <= len(minutes) <= 11  # closed minutes of the last 10 (the open one is in memory)
    assert sum(m["count"] for m in minutes) <= 600
    assert all(10.0 <= m["min"] <= m["mean"] <= m["max"] <= 16.0 for m in minutes)


def test_config_option_finds_the_file(
    twin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"agent:\n  data_dir: {twin.parent}\ntwin:\n  path: {twin.name}\n")
    assert run(["twin", "status", "--config", str(config)]) == 0
    assert "pump.flow" in capsys.readouterr().out


def test_clear_errors(twin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["twin", "export", "--db", str(twin), "--signal", "pump.flwo"]) == 2
    assert "did you mean pump.flow?" in capsys.readouterr().err
    assert run(["twin", "status", "--db", str(tmp_path / "missing.db")]) == 1
    assert "no twin file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["twin", "export", "--db", str(twin), "--signal", "x", "--since", "1 hour"])


def test_plot_writes_a_png(twin: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for extra in ([], ["--rollups"]):
        out = tmp_path / f"flow{len(extra)}.png"
        argv = ["twin", "plot", "--db", str(twin), "--signal", "pump.flow", "--out", str(out)]
        assert run(argv + extra) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(twin: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from tests.cli.test_twin import run\n"
        f"sys.exit(run(['twin', 'plot', '--db', {str(twin)!r}, '--signal', 'pump.flow',"
        f" '--out', {str(tmp_path / 'x.png')!r}]))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install 'plant-edge-agent[plot]'" in done.stderr
    assert not (tmp_path / "x.png").exists()
