"""`edge-agent calibrate` against a real twin file: learn, version, roll back."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli.detect import EX_DATAERR, EX_IOERR, calibrate_command, rebaseline_command
from edge_agent.cli.main import main
from edge_agent.detect.calibrate import versions
from edge_agent.detect.card import ModelCard
from edge_agent.errors import EX_CONFIG
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample, SignalInfo
from tests.detect.tiny import SIGNALS, square_model


def setup(
    tmp_path: Path, seconds: int, asset: str = "      calibrate: {min_windows: 50}\n"
) -> tuple[Path, np.ndarray]:
    square_model(tmp_path / "tiny.onnx")
    (tmp_path / "agent.yaml").write_text(
        f"agent:\n  data_dir: {tmp_path}\n"
        "detect:\n  assets:\n    - name: pump\n      model: tiny.onnx\n"
        f"      signals: [{', '.join(SIGNALS)}]\n" + asset
    )
    store = SignalStore.open(tmp_path / "twin.db", TwinConfig())
    store.register([SignalInfo(s, "pump", 1.0) for s in [*SIGNALS, "detect.pump.alarm"]])
    rng = np.random.default_rng(2)
    start = time.time() - seconds - 5
    matrix = rng.normal([10.0, 50.0, 1.0], [2.0, 5.0, 0.5], size=(seconds, 3))
    batch: list[Sample] = []
    for i, values in enumerate(matrix):
        samples = [
            Sample(s, start + i, float(v), Quality.GOOD)
            for s, v in zip(SIGNALS, values, strict=True)
        ]
        if i == 100:
            samples[1] = Sample.bad(SIGNALS[1], start + i)
        if seconds > 300 and i in (200, 250):  # the agent recorded an alarm: not normal
            samples.append(Sample("detect.pump.alarm", start + i, float(i == 200), Quality.GOOD))
        batch += samples
    store.write(batch)  # one transaction instead of 400 fsyncs
    store.close()
    return tmp_path / "agent.yaml", matrix


def args(config: Path, rollback: bool = False, **flags: bool) -> argparse.Namespace:
    return argparse.Namespace(
        config=config,
        asset="pump",
        since="1h",
        until=None,
        rollback=rollback,
        dry_run=flags.get("dry_run", False),
        force=flags.get("force", True),
    )


def test_calibrate_from_the_twin_then_roll_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, matrix = setup(tmp_path, 400)
    assert calibrate_command(args(config)) == 0
    assert "card v2 written to tiny.card.v2.json" in capsys.readouterr().out
    current = ModelCard.from_json((tmp_path / "tiny.card.json").read_text())
    assert current.version == 2 and sorted(versions(tmp_path / "tiny.onnx")) == [1, 2]
    # Held values at the edges and the rows blanked by BAD shift these only a little.
    std = matrix.std(axis=0)
    np.testing.assert_allclose(current.mean, matrix.mean(axis=0), atol=0.05 * std.max())
    np.testing.assert_allclose(current.std, std, rtol=0.05)
    # 400 samples on the 1 s grid, the last held up to 3 s (fill_limit), minus the
    # grid row that held the BAD sample and the 50 rows in alarm.
    assert 349 <= current.info["calibrated_rows"] <= 352
    assert calibrate_command(args(config, rollback=True)) == 0
    assert ModelCard.from_json((tmp_path / "tiny.card.json").read_text()).version == 1


def test_too_short_history_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = setup(tmp_path, 3)  # 3 rows (+3 s held): short of 2 windows
    assert calibrate_command(args(config)) == EX_DATAERR
    assert "refused: 2 usable window(s)" in capsys.readouterr().err
    assert not (tmp_path / "tiny.card.json").exists()


def test_less_than_the_default_minimum_is_refused_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path, 400, asset="")  # default min_windows: 3600
    assert calibrate_command(args(config)) == EX_DATAERR
    err = capsys.readouterr().err
    assert "usable window(s)" in err and "at least 3600" in err and "min_windows" in err
    assert not (tmp_path / "tiny.card.json").exists()


def test_a_large_threshold_change_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path, 400)
    assert calibrate_command(args(config, force=False)) == EX_DATAERR
    err = capsys.readouterr().err
    assert "refused: the threshold would change" in err and "--force" in err
    assert not (tmp_path / "tiny.card.json").exists()
    assert calibrate_command(args(config, force=True)) == 0


def test_dry_run_shows_both_cards_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path, 400)
    assert calibrate_command(args(config, dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "dry run over" in out and "current v1" in out
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines()[2:]}
    assert rows["threshold"][0] == "1"
    assert set(rows) >= {"alerts it would raise", "windows >= threshold", f"mean {SIGNALS[0]}"}
    # The shipped card (mean 0, std 1) calls this machine's normal running abnormal.
    was, will = (int(v) for v in rows["alerts it would raise"])
    assert was >= 1 and will == 0
    assert not (tmp_path / "tiny.card.json").exists() and versions(tmp_path / "tiny.onnx") == {}


def test_only_running_history_is_learnt(tmp_path: Path) -> None:
    config, _ = setup(
        tmp_path, 400, asset="      run_state: pump.run\n      calibrate: {min_windows: 50}\n"
    )
    store = SignalStore.open(tmp_path / "twin.db", TwinConfig())
    store.register([SignalInfo("pump.run", "pump", 1.0)])
    start = time.time() - 405
    store.write([Sample("pump.run", start + i, float(i >= 150), Quality.GOOD) for i in range(400)])
    store.close()
    assert calibrate_command(args(config)) == 0
    current = ModelCard.from_json((tmp_path / "tiny.card.json").read_text())
    # 150 stopped rows out too (the 50 in alarm are within the running part).
    assert 199 <= current.info["calibrated_rows"] <= 202


def test_missing_twin_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = setup(tmp_path, 5)
    (tmp_path / "twin.db").unlink()
    assert calibrate_command(args(config)) == EX_IOERR
    assert "twin" in capsys.readouterr().err


def test_rebaseline_takes_recent_running_history_as_the_new_normal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, matrix = setup(tmp_path, 400)
    ns = argparse.Namespace(
        config=config, asset="pump", since="1h", until=None, dry_run=False, force=False
    )
    assert rebaseline_command(ns) == 0
    assert "new normal from" in capsys.readouterr().out
    current = ModelCard.from_json((tmp_path / "tiny.card.json").read_text())
    # The mean moves, the std and the threshold stay; the rows in alarm are kept.
    np.testing.assert_allclose(current.mean, matrix.mean(axis=0), atol=0.05 * matrix.std().max())
    assert current.std == (1.0, 1.0, 1.0) and current.threshold == 1.0
    assert current.info["rebaselined_rows"] >= 395
    assert calibrate_command(args(config, rollback=True)) == 0
    assert ModelCard.from_json((tmp_path / "tiny.card.json").read_text()).version == 1


def test_rebaseline_on_a_short_history_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup(tmp_path, 400, asset="")
    ns = argparse.Namespace(
        config=config, asset="pump", since="1h", until=None, dry_run=False, force=False
    )
    assert rebaseline_command(ns) == EX_DATAERR
    assert "at least 3600" in capsys.readouterr().err
    ns.force = True
    assert rebaseline_command(ns) == 0


SHIPPED_RUL = Path(__file__).resolve().parents[2] / "models" / "cmapss_fd001_rul.onnx"
RUL_SIGNALS = ", ".join(f"engine.s{n}" for n in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21))
TOOLS = {
    "calibrate": [],
    "rebaseline": [],
    "replay": ["--data", "history.csv", "--out", "scores.csv"],
}


@pytest.mark.parametrize("command", sorted(TOOLS))
@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("gone.onnx", "", "model file not found: "),
        ("tiny.onnx", "      prognosis: {type: model}\n", "needs a prognostic model"),
    ],
    ids=["missing", "wrong-kind"],
)
def test_a_bad_model_names_the_config_line_and_exits_78(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    model: str,
    extra: str,
    message: str,
) -> None:
    """The detection tools load their asset as ``run`` and ``check-config`` do: the
    asset's ``model:`` line (the second asset's, line 8) before the loader's message."""
    square_model(tmp_path / "tiny.onnx")
    config = tmp_path / "agent.yaml"
    config.write_text(
        "detect:\n  assets:\n"
        f"    - name: other\n      model: tiny.onnx\n      signals: [{', '.join(SIGNALS)}]\n"
        f"    - name: pump\n      signals: [{', '.join(SIGNALS)}]\n"
        f"      model: {model}\n" + extra
    )
    argv = [command, "-c", str(config), "--asset", "pump", *TOOLS[command]]
    assert main(argv) == EX_CONFIG
    err = capsys.readouterr().err
    assert f"\n{config}:8: detect.assets[1].model: " in err and message in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["calibrate", "rebaseline"])
def test_a_prognostic_model_is_refused_by_the_card_fitting_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"detect:\n  assets:\n    - name: engine\n      model: {SHIPPED_RUL}\n"
        f"      signals: [{RUL_SIGNALS}]\n"
    )
    assert main([command, "-c", str(config), "--asset", "engine"]) == EX_CONFIG
    err = capsys.readouterr().err
    expected = f"{config}:4: detect.assets[0].model: asset engine: {command} fits an anomaly"
    assert expected in err and "cmapss_fd001_rul.onnx is prognostic" in err, err
