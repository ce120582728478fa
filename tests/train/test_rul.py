"""Tests of the RUL recipe: backprop, data round trip, ONNX graph = numpy, determinism.

Small synthetic engines keep these fast; the C-MAPSS figures come from validate.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge_agent.train.rul_data import (
    SIGNALS,
    Engine,
    read_replay_csv,
    rul_targets,
    write_replay_csv,
)
from edge_agent.train.rul_fit import BASES, Recipe, basis, fit
from edge_agent.train.rul_net import backward, forward, init_params


def synthetic_engines(n: int, seed: int) -> list[Engine]:
    """Engines whose signals drift up exponentially towards failure, plus noise."""
    rng = np.random.default_rng(seed)
    engines = []
    for unit in range(1, n + 1):
        life = int(rng.integers(120, 220))
        wear = np.exp((np.arange(life) - life) / 40.0)
        base = rng.normal(100.0, 5.0, size=len(SIGNALS))
        values = base + np.outer(wear, rng.uniform(1, 5, len(SIGNALS)))
        engines.append(Engine(unit, values + rng.normal(0, 0.3, values.shape)))
    return engines


RECIPE = Recipe(signals=("s2", "s3", "s4", "s7"), window=20, hidden=8, epochs=4, members=2, seed=3)


def test_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    params = init_params(6, 5, rng)
    x, y = rng.normal(size=(7, 6)), rng.normal(size=7)
    pred, h = forward(params, x)
    grads = backward(params, x, h, 2 * (pred - y))
    for key, value in params.items():
        index = tuple(int(rng.integers(0, d)) for d in value.shape)
        old = value[index]
        value[index] = old + 1e-6
        up = np.sum((forward(params, x)[0] - y) ** 2)
        value[index] = old - 1e-6
        down = np.sum((forward(params, x)[0] - y) ** 2)
        value[index] = old
        assert grads[key][index] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("kind", BASES)
def test_basis_reads_level_and_slope_of_a_line(kind: str) -> None:
    window = 30
    line = 5.0 + 0.25 * np.arange(window)
    summary = line @ basis(window, kind)
    assert summary[0] == pytest.approx(line.mean())
    assert summary[1] == pytest.approx(0.25)


def test_targets_count_down_to_zero_under_the_cap() -> None:
    assert rul_targets(5, 3.0).tolist() == [3.0, 3.0, 2.0, 1.0, 0.0]


def test_replay_csv_round_trip(tmp_path: Path) -> None:
    engines = synthetic_engines(3, seed=0)
    path = tmp_path / "engines.csv"
    assert write_replay_csv(engines, path) == sum(e.cycles for e in engines)
    back = read_replay_csv(path)
    assert [e.unit for e in back] == [1, 2, 3]
    for a, b in zip(engines, back, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-9)


def test_training_is_deterministic_per_seed() -> None:
    engines = synthetic_engines(6, seed=1)
    a, b = fit(engines, RECIPE), fit(engines, RECIPE)
    c = fit(engines, dataclasses.replace(RECIPE, seed=4))
    assert all(np.array_equal(p["w1"], q["w1"]) for p, q in zip(a.members, b.members, strict=True))
    assert not np.array_equal(a.members[0]["w1"], c.members[0]["w1"])


def test_onnx_fp32_equals_numpy_and_int8_stays_close(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from edge_agent.train.rul_fit import windows
    from edge_agent.train.rul_graph import OnnxRul, export

    engines = synthetic_engines(6, seed=2)
    model = fit(engines, RECIPE)
    fp32, int8 = tmp_path / "rul.fp32.onnx", tmp_path / "rul.onnx"
    export(model, fp32, int8)
    x, _ = windows(engines, RECIPE.signals, RECIPE.window, RECIPE.cap)
    expected = model.predict(x)
    np.testing.assert_allclose(OnnxRul(fp32).predict(x), expected, atol=0.05)
    int8_model = OnnxRul(int8)
    assert int8_model.engine == "numpy"  # what the agent runs it in: exact on every CPU
    assert np.max(np.abs(int8_model.predict(x) - expected)) < 0.05 * RECIPE.cap
    card = OnnxRul(int8).card
    assert card["kind"] == "prognostic" and card["window"] == RECIPE.window
    assert card["signals"] == list(RECIPE.signals)


def test_tflite_matches_numpy(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    from edge_agent.train.rul_fit import windows
    from edge_agent.train.rul_tflite import TfliteRul, export

    engines = synthetic_engines(6, seed=5)
    model = fit(engines, RECIPE)
    x, _ = windows(engines[:1], RECIPE.signals, RECIPE.window, RECIPE.cap)
    expected = model.predict(x)
    fp32 = export(model, tmp_path / "rul.tflite", int8=False)
    np.testing.assert_allclose(TfliteRul(fp32).predict(x), expected, atol=0.05)
    int8 = export(model, tmp_path / "rul_int8.tflite", int8=True)
    assert np.max(np.abs(TfliteRul(int8).predict(x) - expected)) < 0.05 * RECIPE.cap
    assert (tmp_path / "rul_int8.card.json").is_file()


def test_train_command_writes_a_prognostic_model_the_agent_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli.main import main
    from edge_agent.detect.prognostic import load_prognostic

    data = tmp_path / "engines.csv"
    write_replay_csv(synthetic_engines(4, seed=6), data)
    out = tmp_path / "models" / "rul.onnx"
    argv = ["train", "--kind", "prognostic", "--data", str(data), "--out", str(out)]
    argv += ["--signals", "s2,s3,s4,s7", "--window", "20", "--epochs", "2", "--members", "1"]
    assert main(argv) == 0
    assert "prognostic, int8" in capsys.readouterr().out
    model = load_prognostic(out)
    assert model.card.signals == ("s2", "s3", "s4", "s7") and model.card.window == 20
    assert model.card.name == "rul" and model.card.info["engines"] == 4


def test_train_command_says_what_is_wrong_with_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli.main import main

    data = tmp_path / "short.csv"
    write_replay_csv([Engine(1, np.ones((5, len(SIGNALS))))], data)
    argv = ["train", "--kind", "prognostic", "--data", str(data), "--out", str(tmp_path / "x.onnx")]
    assert main(argv) == 2
    assert "no engine has 30 cycles" in capsys.readouterr().err
