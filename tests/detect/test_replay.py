"""Replay: a CSV through Windows + Detector.step gives what the live loop gives."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli.detect import EX_DATAERR, replay_command
from edge_agent.detect import replay as rp
from edge_agent.detect.config import AssetConfig, DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample
from tests.detect.tiny import SIGNALS, card, square_model

T0 = 1_800_000_000.0
COLUMNS = ("Current", "Temp", "Vib")  # SKAB-style column names for pump.current, ...


def plant(n: int = 150, seed: int = 5) -> list[list[Sample]]:
    """Samples per second: noise, a fault from 80 to 100 s, one BAD value, one lost row."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = 0.25 + (1.2 if 80 <= i < 100 else 0.0)
        values = rng.normal(level, 0.1, 3)
        samples = [
            Sample(s, T0 + i, float(v), Quality.GOOD) for s, v in zip(SIGNALS, values, strict=True)
        ]
        if i == 40:
            samples[2] = Sample.bad(SIGNALS[2], T0 + i)
        out.append([] if i == 60 else samples)
    return out


def write_csv(path: Path, seconds: list[list[Sample]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["datetime", *COLUMNS, "anomaly"])
        for samples in seconds:
            if not samples:
                continue
            stamp = datetime.fromtimestamp(samples[0].ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
            cells = ["" if s.value is None else repr(s.value) for s in samples]
            writer.writerow([stamp, *cells, "0"])


def write_config(tmp_path: Path) -> Path:
    square_model(tmp_path / "tiny.onnx", card(threshold=1.0))
    (tmp_path / "agent.yaml").write_text(
        "detect:\n"
        "  assets:\n"
        "    - name: pump\n"
        "      model: tiny.onnx\n"
        f"      signals: [{', '.join(SIGNALS)}]\n"
        "      raise_after: {k: 2, n: 3}\n"
        "      clear_after: {k: 3, n: 3}\n"
    )
    return tmp_path / "agent.yaml"


def live(tmp_path: Path, seconds: list[list[Sample]]) -> dict[float, tuple[float, bool]]:
    """The agent's way: the recorder appends each second's batch, the loop steps a bit later."""
    asset = AssetConfig.model_validate(
        {
            "name": "pump",
            "model": "tiny.onnx",
            "signals": list(SIGNALS),
            "raise_after": {"k": 2, "n": 3},
            "clear_after": {"k": 3, "n": 3},
        }
    )
    det = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)
    windows = Windows(capacity=max(64, int(det.window_seconds() * 20)))
    out = {}
    for i in range(len(seconds) + 2):  # on for `settle` (2 s) after the last sample
        windows.append(seconds[i] if i < len(seconds) else [])
        det.step(windows, T0 + i + 0.37)  # tick phase differs from sample times
        scored = det.scores()["pump"]
        if scored is not None:
            out[scored.ts] = (scored.score, scored.alarm)
    return out


def test_replay_equals_live(tmp_path: Path) -> None:
    seconds = plant()
    write_csv(tmp_path / "history.csv", seconds)
    args = argparse.Namespace(
        config=write_config(tmp_path),
        asset="pump",
        data=tmp_path / "history.csv",
        calibrate_rows=0,
        out=tmp_path / "out.csv",
    )
    assert replay_command(args) == 0
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 149  # one per input row (the lost second has none)
    replayed = {
        datetime.fromisoformat(r["ts"]).replace(tzinfo=UTC).timestamp(): (r["score"], r["alarm"])
        for r in rows
    }
    expected = live(tmp_path, seconds)
    assert len(expected) > 100 and any(alarm for _, alarm in expected.values())
    scored = {ts: v for ts, v in replayed.items() if v[0] != ""}
    # The lost second (60) has no row to report, but live and replay both scored it.
    assert sorted(scored) == sorted(set(expected) - {T0 + 60})
    for ts, (score, alarm) in expected.items():
        if ts == T0 + 60:
            continue
        assert float(scored[ts][0]) == pytest.approx(score, rel=1e-5)
        assert scored[ts][1] == str(int(alarm))
    # The BAD value at 40 s keeps windows 40..43 unscored; so does warm-up (0..2).
    assert {T0 + i for i in (0, 1, 2, 40, 41, 42, 43)}.isdisjoint(scored)


def test_replay_calibrates_on_first_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 300
    values = rng.normal([10.0, 50.0, 1.0], [2.0, 5.0, 0.5], size=(n, 3))
    values[200:230] += [8.0, 20.0, 2.0]  # a fault well after the calibration rows
    with (tmp_path / "h.csv").open("w") as handle:
        handle.write("timestamp,pump.current,pump.temp,pump.vib\n")
        for i, row in enumerate(values):
            handle.write(f"{T0 + i},{row[0]},{row[1]},{row[2]}\n")
    args = argparse.Namespace(
        config=write_config(tmp_path),
        asset="pump",
        data=tmp_path / "h.csv",
        calibrate_rows=100,
        out=tmp_path / "o.csv",
    )
    assert replay_command(args) == 0
    with (tmp_path / "o.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    alarm = np.array([r["alarm"] == "1" for r in rows])
    assert all(r["score"] == "" for r in rows[:100])
    assert not alarm[:200].any() and alarm[205:230].all()


def test_read_table_skab_format_and_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "skab.csv"
    path.write_text(
        "datetime;Current;Temp;Vib;anomaly\r\n"
        "2020-03-09 10:14:33;1.5;20;0.1;0\r\n"
        "2020-03-09 10:14:34;oops;;nan;0\r\n"
    )
    table = rp.read_table(path, list(SIGNALS))
    assert table.ts[1] - table.ts[0] == 1.0
    assert table.ts[0] == datetime(2020, 3, 9, 10, 14, 33, tzinfo=UTC).timestamp()
    assert [s.quality for s in table.samples(1)] == [Quality.BAD] * 3
    assert table.samples(0)[0] == Sample("pump.current", table.ts[0], 1.5, Quality.GOOD)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,Current,Temp,Vib\n1,1,1,1\n", "no time column"),
        ("timestamp,Current,Temp\n1,1,1\n", r"no signal for \['pump.vib'\]"),
        ("timestamp,Current,Temp,Vib\n1,1,1,1\n\nyesterday,1,1,1\n", r"csv:4: cannot read time"),
        ("timestamp,Current,Temp,Vib\n5,1,1,1\n4,1,1,1\n", r"csv:3: time goes backwards"),
    ],
)
def test_unusable_csv_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(rp.ReplayError, match=message):
        rp.read_table(tmp_path / "bad.csv", list(SIGNALS))


def test_replay_command_reports_bad_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.csv").write_text("when,x\n")
    args = argparse.Namespace(
        config=write_config(tmp_path),
        asset="pump",
        data=tmp_path / "bad.csv",
        calibrate_rows=0,
        out=tmp_path / "o.csv",
    )
    assert replay_command(args) == EX_DATAERR
    assert "no time column" in capsys.readouterr().err


def test_commands_register_with_argparse(tmp_path: Path) -> None:
    from edge_agent.cli.detect import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    write_csv(tmp_path / "h.csv", plant(30))
    argv = ["replay", "-c", str(write_config(tmp_path)), "--asset", "pump"]
    args = parser.parse_args(
        [*argv, "--data", str(tmp_path / "h.csv"), "--out", str(tmp_path / "o")]
    )
    assert args.func(args) == 0 and (tmp_path / "o").read_text().startswith("ts,score,alarm")
    args = parser.parse_args(["calibrate", "-c", "x.yaml", "--asset", "pump", "--rollback"])
    assert args.since == "7d" and args.rollback and args.func.__name__ == "calibrate_command"


def test_replay_runs_the_assets_rules_and_writes_alert_events(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(
        config.read_text()
        + "  rules:\n"
        + "    - {name: hot, type: threshold, signal: pump.temp, asset: pump,\n"
        + "       above: 1.0, for: 3s}\n"
        + "    - {name: gone, type: bad_quality, signal: pump.oil, asset: pump}\n"
        + "    - {name: other, type: bad_quality, signal: press.temp}\n"
    )
    write_csv(tmp_path / "h.csv", plant())
    args = argparse.Namespace(
        config=config,
        asset="pump",
        data=tmp_path / "h.csv",
        calibrate_rows=0,
        out=tmp_path / "o.csv",
        alerts=tmp_path / "alerts.jsonl",
    )
    assert replay_command(args) == 0
    events = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    causes = [(e["cause"], e["state"]) for e in events]
    # The fault (80-100 s) raises the model alert and, after 3 s above 1.0, the rule;
    # the rule on a signal without a column and the other asset's rule are left out.
    # The model alert escalates to critical once its windows are deep in the fault.
    assert causes == [
        ("model", "raised"),
        ("hot", "raised"),
        ("model", "severity"),
        ("hot", "cleared"),
        ("model", "cleared"),
    ]
    hot = events[1]
    assert hot["window_end"] - T0 >= 83 and "for 3s" in hot["reason"]
    # Each raise carries the window's values of its top signals (bounded).
    shown = hot["extra"]["evidence"]
    assert len(shown["ts"]) == len(shown["values"]["pump.temp"]) <= 60
    assert max(shown["values"]["pump.temp"]) > 1.0
    model = events[0]["extra"]["evidence"]
    assert list(model["values"]) == events[0]["signals"]
    assert events[2]["severity"] == "critical" and events[2]["extra"]["update"] == 1
    assert events[2]["id"] == events[0]["id"] == events[4]["id"]


def test_scores_are_causal(tmp_path: Path) -> None:
    """Changing the future leaves every earlier score and alarm as it was."""
    config = write_config(tmp_path)
    seconds = plant()
    write_csv(tmp_path / "a.csv", seconds)
    future = [
        [Sample(s.signal, s.ts, 50.0, Quality.GOOD) for s in row] if i > 90 else row
        for i, row in enumerate(seconds)
    ]
    write_csv(tmp_path / "b.csv", future)
    outs = []
    for name in ("a", "b"):
        args = argparse.Namespace(
            config=config,
            asset="pump",
            data=tmp_path / f"{name}.csv",
            calibrate_rows=0,
            out=tmp_path / f"{name}.out",
        )
        assert replay_command(args) == 0
        outs.append((tmp_path / f"{name}.out").read_text().splitlines())
    a, b = outs
    # Header + rows 0..90 (the lost second 60 has no row) agree; row 91 differs.
    assert a[:91] == b[:91] and a[91] != b[91]
