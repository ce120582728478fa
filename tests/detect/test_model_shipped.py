"""The shipped models: they load, fit their data, and the trainer reproduces them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli.train import main as train_main
from edge_agent.detect.model import load_model, sliding_windows
from edge_agent.errors import ModelError
from edge_agent.sim.agent_config import AGENT_SIGNALS
from edge_agent.sim.physics import simulate
from edge_agent.sim.scenario import get_scenario

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "edge_agent" / "sim" / "demo_pump.onnx"
SKAB = REPO / "models" / "skab_pump.onnx"
PHYSICS = ["motor_current", "bearing_temp", "vibration_rms", "discharge_pressure", "flow"]


def demo_scores(
    seconds: float, scenario: str, seed: int, path: Path = DEMO
) -> tuple[np.ndarray, np.ndarray, float]:
    model = load_model(path)
    series = simulate(seconds, seed=seed, scenario=scenario)
    rows = np.column_stack([series[s] for s in PHYSICS])
    w = model.card.window
    score = model.score(sliding_windows(model.normalise(rows), w))
    labels = get_scenario(scenario).labels(series["t"][w - 1 :])
    return score, np.any(list(labels.values()), axis=0), model.card.threshold


def test_demo_model_reads_the_plants_modbus_signals() -> None:
    model = load_model(DEMO, signals=[AGENT_SIGNALS[s] for s in PHYSICS])
    assert model.backend == "numpy"
    assert model.card.info["format"] == "int8"


def test_demo_model_is_quiet_on_normal_running() -> None:
    score, _, threshold = demo_scores(1800, "normal", seed=123)
    assert np.mean(score > threshold) < 0.005


def test_demo_model_alarms_during_the_demo_faults() -> None:
    score, faulty, threshold = demo_scores(90, "demo", seed=321)
    assert np.mean(score[faulty] > threshold) > 0.7
    assert score[faulty].mean() > 3 * score[~faulty][:15].mean()


def test_skab_int8_and_fp32_agree() -> None:
    int8 = load_model(SKAB)
    fp32 = load_model(SKAB.with_name("skab_pump.fp32.onnx"))
    assert int8.card.signals == fp32.card.signals
    assert (int8.card.info["format"], fp32.card.info["format"]) == ("int8", "fp32")
    x = np.random.default_rng(5).normal(size=(200, int8.card.window, len(int8.card.signals)))
    a, b = int8.score(x), fp32.score(x)
    assert np.corrcoef(a, b)[0, 1] > 0.99
    assert int8.card.info["vs_fp32"]["alarm_disagreement"] < 0.01


def test_trainer_writes_int8_fp32_and_card(tmp_path: Path) -> None:
    out = tmp_path / "pump.onnx"
    code = train_main(
        [
            "--simulate",
            "900",
            "--signals",
            ",".join(PHYSICS),
            "--window",
            "5",
            "--quantile",
            "0.999",
            "--factor",
            "1.5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    int8 = load_model(out)
    fp32 = load_model(tmp_path / "pump.fp32.onnx")
    assert (tmp_path / "pump.card.json").is_file()
    assert int8.card.signals == tuple(AGENT_SIGNALS[s] for s in PHYSICS)
    assert int8.card.info["trained_on"][0]["rows"] == 900
    assert fp32.card.info["format"] == "fp32"
    check = int8.card.info["vs_fp32"]
    assert check["score_corr"] > 0.95
    assert int8.card.threshold > 0 and fp32.card.threshold > 0
    score, faulty, threshold = demo_scores(90, "demo", seed=9, path=out)
    assert np.mean(score[faulty] > threshold) > 0.5


def test_trainer_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("t,a,b\n0,1,2\n1,2,3\n")
    code = train_main(["--data", str(csv), "--signals", "a,c", "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    assert "no column ['c']" in capsys.readouterr().err


def test_tflite_export_runs_in_litert_like_onnx(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    from edge_agent.train.tflite import export

    fp32 = load_model(SKAB.with_name("skab_pump.fp32.onnx"))
    x = np.random.default_rng(2).normal(size=(9, fp32.card.window, len(fp32.card.signals)))
    for int8 in (False, True):
        path = export(fp32.path, tmp_path / f"m{int(int8)}.tflite", fp32.card, int8)
        lite = load_model(path, signals=fp32.card.signals)
        assert lite.backend == "litert"
        assert lite.errors(x).shape == (9, len(fp32.card.signals))
        assert lite.errors(x[:1]).shape == (1, len(fp32.card.signals))  # batch resized back
        tolerance = 0.05 if int8 else 1e-4
        np.testing.assert_allclose(lite.score(x), fp32.score(x), rtol=tolerance, atol=tolerance)


def test_tflite_with_wrong_card_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    from edge_agent.train.tflite import export

    fp32 = load_model(SKAB.with_name("skab_pump.fp32.onnx"))
    path = export(fp32.path, tmp_path / "m.tflite", fp32.card, int8=True)
    with pytest.raises(ModelError, match="input 'window' has shape"):
        load_model(path, card=fp32.card.replace(window=fp32.card.window + 1))


def test_trainer_tflite_flag_writes_both_exports_with_own_cards(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    out = tmp_path / "pump.onnx"
    args = ["--simulate", "600", "--signals", ",".join(PHYSICS), "--window", "5", "--tflite"]
    assert train_main([*args, "--out", str(out)]) == 0
    for kind in ("int8", "fp32"):
        lite = load_model(tmp_path / f"pump_{kind}.tflite")
        assert lite.card.info["format"] == f"tflite {kind}"
        assert lite.card.info["vs_fp32"]["score_corr"] > 0.95
    assert load_model(out).card.info["format"] == "int8"
