"""`edge-agent calibrate` against a real twin file: learn, version, roll back."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli.detect import EX_DATAERR, EX_IOERR, calibrate_command
from edge_agent.detect.calibrate import versions
from edge_agent.detect.card import ModelCard
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample, SignalInfo
from tests.detect.tiny import SIGNALS, square_model


def setup(tmp_path: Path, seconds: int) -> tuple[Path, np.ndarray]:
    square_model(tmp_path / "tiny.onnx")
    (tmp_path / "agent.yaml").write_text(
        f"agent:\n  data_dir: {tmp_path}\n"
        "detect:\n  assets:\n    - name: pump\n      model: tiny.onnx\n"
        f"      signals: [{', '.join(SIGNALS)}]\n"
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


def args(config: Path, rollback: bool = False) -> argparse.Namespace:
    return argparse.Namespace(
        config=config, asset="pump", since="1h", until=None, rollback=rollback
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
    assert "at least 7 consecutive complete rows" in capsys.readouterr().err
    assert not (tmp_path / "tiny.card.json").exists()


def test_missing_twin_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = setup(tmp_path, 5)
    (tmp_path / "twin.db").unlink()
    assert calibrate_command(args(config)) == EX_IOERR
    assert "twin" in capsys.readouterr().err
