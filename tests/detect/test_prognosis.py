"""Remaining life: a prognostic model through replay and the detector, the trend fallback."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.cli.main import main
from edge_agent.config import load_config
from edge_agent.detect.detector import Detector
from edge_agent.detect.model import load_model
from edge_agent.detect.prognosis import robust_line, time_to
from edge_agent.detect.prognostic import load_prognostic
from edge_agent.errors import ModelError
from edge_agent.train.rul_data import write_replay_csv
from edge_agent.train.rul_fit import fit
from edge_agent.train.rul_graph import export
from edge_agent.twin.windows import Windows
from tests.detect.referees import for_onnxruntime, reference
from tests.detect.test_onnx_small import session
from tests.detect.tiny import SIGNALS, card, rows, square_model
from tests.train.test_rul import RECIPE, synthetic_engines

ENGINE_SIGNALS = ", ".join(f"engine.{s}" for s in ("setting1", "s1", *RECIPE.signals, "s21"))


@pytest.fixture(scope="module")
def rul_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prognostic model (int8 ONNX) trained on synthetic engines."""
    folder = tmp_path_factory.mktemp("rul")
    export(fit(synthetic_engines(6, seed=2), RECIPE), folder / "fp32.onnx", folder / "rul.onnx")
    return folder / "rul.onnx"


def _config(tmp_path: Path, model: Path, prognosis: str = "") -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "detect:\n  interval: 1s\n  assets:\n    - name: engine\n"
        f"      model: {model}\n      signals: [{ENGINE_SIGNALS}]\n      fill_limit: 1s\n"
        + prognosis
    )
    return path


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def rul_of(referee: Any, window: np.ndarray) -> float:
    feeds = {"window": np.ascontiguousarray(window[np.newaxis], dtype=np.float32)}
    return float(referee.run(["rul"], feeds)[0][0, 0])


def test_replay_of_a_prognostic_asset_writes_the_models_rul(
    tmp_path: Path, rul_model: Path
) -> None:
    """The replay (the numpy engine: ``engine: auto``) writes what two exact referees give:
    onnx's reference evaluator, and onnxruntime on the same graph as it computes it
    exactly on this CPU (:mod:`tests.detect.referees`). onnxruntime on the int8 file
    as written is no referee on x86-64 without VNNI: its u8 x s8 sums saturate there
    (measured: RUL 28.19 where the ONNX definition gives 19.89).
    """
    assert load_prognostic(rul_model).backend == "numpy"
    engines = synthetic_engines(3, seed=7)
    data = tmp_path / "engines.csv"
    write_replay_csv(engines, data)
    out = tmp_path / "rul.csv"
    config = _config(tmp_path, rul_model)
    argv = ["replay", "-c", str(config), "--asset", "engine", "--data", str(data)]
    assert main([*argv, "--out", str(out)]) == 0
    header, *lines = _read(out)
    assert header == ["ts", "rul"]
    graph = rul_model.read_bytes()
    referees = [reference(graph), session(for_onnxruntime(graph))]
    w = RECIPE.window
    start = 0
    for engine in engines:
        column = [line[1] for line in lines[start : start + engine.cycles]]
        assert column[: w - 1] == [""] * (w - 1), "warm-up rows have no rul"
        values = engine.values[:, [2 + int(s[1:]) for s in RECIPE.signals]]
        windows = np.lib.stride_tricks.sliding_window_view(values, w, axis=0).transpose(0, 2, 1)
        for referee in referees:  # one window per call, as the agent runs it (dynamic int8)
            expected = [rul_of(referee, x) for x in windows]
            np.testing.assert_allclose([float(c) for c in column[w - 1 :]], expected, atol=1e-3)
        start += engine.cycles
    assert len(lines) == start


def test_a_prognostic_asset_records_rul_in_the_twin_and_sends_it_every(
    tmp_path: Path, rul_model: Path
) -> None:
    config = load_config(_config(tmp_path, rul_model, "      prognosis: {every: 10s}\n"))
    detector = Detector.load(config.detect, config.config_path)
    engine = synthetic_engines(1, seed=3)[0]
    names = [f"engine.{s}" for s in ("setting1", "setting2", "setting3")] + [
        f"engine.s{i}" for i in range(1, 22)
    ]
    windows = Windows(256)
    t0 = 1_700_000_000.0
    sent, recorded = [], []
    for i, row in enumerate(engine.values[:60]):
        windows.append(rows(t0 + i, row, names))
        detector.step(windows, t0 + i)
        sent += detector.prognoses()
        recorded += [s for s in detector.samples() if s.signal == "detect.engine.rul"]
    settle = 2  # the default: a grid point is used 2 s after its time
    assert len(recorded) == 60 - settle - RECIPE.window + 1
    assert [p.ts - t0 for p in sent] == [19.0, 29.0, 39.0, 49.0]
    assert {p.method for p in sent} == {"model"} and sent[0].unit == "cycles"
    assert sent[-1].to_dict()["model"] == "cmapss-fd001-rul"
    assert "detect.engine.rul" in {i.signal for i in detector.signal_infos()}


def test_loaders_refuse_the_other_kind(tmp_path: Path, rul_model: Path) -> None:
    with pytest.raises(ModelError, match="'prognostic' model, not an anomaly model"):
        load_model(rul_model)
    anomaly = square_model(tmp_path / "tiny.onnx")
    with pytest.raises(ModelError, match="not a prognostic card"):
        load_prognostic(anomaly)


def test_assets_naming_one_prognostic_model_share_it(tmp_path: Path, rul_model: Path) -> None:
    path = _config(tmp_path, rul_model)
    twin = ENGINE_SIGNALS.replace("engine.", "engine2.")
    with path.open("a") as out:  # a second engine of the same type: the same RUL model
        out.write(f"    - name: engine2\n      model: {rul_model}\n      signals: [{twin}]\n")
    config = load_config(path)
    det = Detector.load(config.detect, config.config_path)
    first, second = det.prognostic["engine"], det.prognostic["engine2"]
    assert first.model is second.model  # one session for the fleet
    assert second.signals == [s.replace("engine.", "engine2.") for s in first.signals]


@pytest.mark.parametrize(
    ("kind", "wanted", "message"),
    [("prognostic", "trend", "needs an anomaly model"), ("anomaly", "model", "needs a prognostic")],
)
def test_prognosis_type_must_fit_the_model(
    tmp_path: Path, rul_model: Path, kind: str, wanted: str, message: str
) -> None:
    model = rul_model if kind == "prognostic" else square_model(tmp_path / "tiny.onnx")
    config = load_config(_config(tmp_path, model, f"      prognosis: {{type: {wanted}}}\n"))
    with pytest.raises(ModelError, match=message):
        Detector.load(config.detect, config.config_path)


def test_robust_line_ignores_outliers_and_its_interval_holds_the_slope() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(60.0)
    y = 90.0 - 0.5 * t + rng.normal(0, 0.3, 60)
    y[[5, 17, 40]] += 60.0  # three wild windows
    slope, intercept, steep, flat = robust_line(t, y, 0.9)
    assert slope == pytest.approx(-0.5, abs=0.02) and intercept == pytest.approx(90.0, abs=1.0)
    assert steep < slope < flat < 0


def test_time_to_the_alarm() -> None:
    assert time_to(70.0, -0.5, -1.0, -0.25) == (40.0, 20.0, 80.0)
    assert time_to(70.0, -0.5, -1.0, 0.1) == (40.0, 20.0, None)  # unbounded
    assert time_to(70.0, 0.2, -0.1, 0.4) == (None, 200.0, None)  # not falling
    assert time_to(45.0, -0.5, -1.0, -0.25) == (0.0, 0.0, 0.0)  # at or past the alarm


def _wearing_plant(path: Path, seconds: int) -> float:
    """A CSV whose anomaly score rises linearly (0.1 + 0.9 t / 600): threshold 1 at t=600."""
    rng = np.random.default_rng(4)
    t0 = 1_700_000_000
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "current", "temp", "vib"])
        for i in range(seconds):
            level = math.sqrt(0.1 + 0.9 * i / 600.0)
            spike = 3.0 if i % 97 == 50 else 0.0  # outliers the robust fit must ignore
            values = level + spike + rng.normal(0, 0.01, 3)
            writer.writerow([t0 + i, *(f"{v:.6f}" for v in values)])
    return float(t0)


def test_trend_fallback_gives_time_to_threshold_through_replay(tmp_path: Path) -> None:
    model = square_model(tmp_path / "tiny.onnx", card(threshold=1.0))
    config = tmp_path / "agent.yaml"
    config.write_text(
        "detect:\n  interval: 1s\n  assets:\n    - name: pump\n"
        f"      model: {model}\n      signals: [{', '.join(SIGNALS)}]\n"
        "      prognosis: {type: trend, window: 2m, every: 10s, min_points: 30}\n"
    )
    data = tmp_path / "wear.csv"
    t0 = _wearing_plant(data, 400)
    out = tmp_path / "out.csv"
    argv = ["replay", "-c", str(config), "--asset", "pump", "--data", str(data)]
    assert main([*argv, "--out", str(out)]) == 0
    header, *lines = _read(out)
    assert header == ["ts", "score", "alarm", "rul", "rul_low", "rul_high"]
    estimated = [(float(ts) - t0, float(r), float(lo), hi) for ts, _, _, r, lo, hi in lines if r]
    assert len(estimated) >= 30
    for t, rul, low, high in estimated:
        truth = 600.0 - t + 1.5  # a window of 4 steps: its score is that of t - 1.5
        # within 10 %: the outlying windows (3 % of them) lean the slope by a few %
        assert rul == pytest.approx(truth, rel=0.1)
        assert low <= rul and (high == "" or rul <= float(high))


async def test_the_detector_loop_queues_prognosis_messages_in_the_outbox(
    tmp_path: Path, rul_model: Path
) -> None:
    from edge_agent.detect.loop import DetectorLoop
    from edge_agent.forward.config import OutboxConfig
    from edge_agent.forward.encode import decode
    from edge_agent.forward.outbox import Outbox
    from edge_agent.worker import Worker

    config = load_config(_config(tmp_path, rul_model, "      prognosis: {every: 1h}\n"))
    worker = Worker()
    try:
        outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        windows = Windows(256)
        detector = Detector.load(config.detect, config.config_path)
        loop = DetectorLoop(detector, windows, outbox, worker, "gw", 1.0, lambda: None)
        engine = synthetic_engines(1, seed=3)[0]
        names = [f"engine.{s}" for s in ("setting1", "setting2", "setting3")]
        names += [f"engine.s{i}" for i in range(1, 22)]
        t0 = 1_700_000_000.0
        for i, row in enumerate(engine.values[:40]):
            windows.append(rows(t0 + i, row, names))
            await loop.step(t0 + i)
        batch = await worker.run(outbox.take, "up", 10)
        assert [r.kind for r in batch] == ["prognosis"]  # one per `every`
        payload = decode(batch[0].body)
        assert payload["type"] == "prognosis" and payload["asset"] == "engine"
        assert payload["method"] == "model" and payload["unit"] == "cycles"
        assert 0.0 <= payload["rul"] <= 125.0 and payload["ts"] == t0 + 19
        assert loop.prognoses == 1
    finally:
        await worker.run(outbox.close)
        worker.close()
