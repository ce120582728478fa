"""Loading and validating anomaly models (tiny ONNX graphs built with onnx.helper)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.detect.card import CARD_KEY, ModelCard, write_sidecar
from edge_agent.detect.model import calibrate_card, load_model, sliding_windows
from edge_agent.errors import ModelError

SIGNALS = ("pump.current", "pump.temp", "pump.vib")


def make_card(**changes: object) -> ModelCard:
    base = ModelCard(
        name="tiny",
        signals=SIGNALS,
        window=4,
        step=1.0,
        mean=(10.0, 50.0, 1.0),
        std=(2.0, 5.0, 0.5),
        threshold=3.0,
    )
    return base.replace(**changes)


def square_error_model(
    path: Path,
    card: ModelCard | None,
    *,
    window: int = 4,
    n: int = 3,
    in_name: str = "window",
    out_name: str = "error",
    in_type: int = TensorProto.FLOAT,
) -> Path:
    """error = mean over time of x**2: what a 'predict zero' autoencoder gives."""
    nodes = [
        helper.make_node("Mul", [in_name, in_name], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["mean"], keepdims=0),
        helper.make_node("Cast", ["mean"], [out_name], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(in_name, in_type, ["batch", window, n])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", n])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if card is not None:
        helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return square_error_model(tmp_path / "tiny.onnx", make_card())


def test_errors_are_per_signal_and_score_is_their_mean(model_path: Path) -> None:
    model = load_model(model_path, signals=SIGNALS, window=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4, 3)).astype(np.float32)
    errors = model.errors(x)
    assert errors.shape == (5, 3)
    np.testing.assert_allclose(errors, (x**2).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(model.score(x), errors.mean(axis=1), rtol=1e-6)


def test_single_window_without_batch_axis(model_path: Path) -> None:
    model = load_model(model_path)
    assert model.errors(np.ones((4, 3))).shape == (1, 3)


def test_card_is_read_from_metadata(model_path: Path) -> None:
    model = load_model(model_path)
    assert model.card == make_card()
    assert model.backend == "numpy"  # Mul, ReduceMean, Cast: the numpy engine runs it
    assert load_model(model_path, engine="onnxruntime").backend == "onnxruntime"


def test_card_beside_the_file_wins_over_metadata(model_path: Path) -> None:
    write_sidecar(model_path, make_card(threshold=7.5, version=2))
    assert load_model(model_path).card.threshold == 7.5


def test_normalise_uses_card(model_path: Path) -> None:
    model = load_model(model_path)
    out = model.normalise(np.array([[12.0, 45.0, 1.5]]))
    np.testing.assert_allclose(out, [[1.0, -1.0, 1.0]])
    assert out.dtype == np.float32


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    with pytest.raises(ModelError, match=r"bad\.onnx: not a valid ONNX model"):
        load_model(path)


def test_truncated_file(model_path: Path) -> None:
    data = model_path.read_bytes()
    model_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_model(model_path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model type"):
        load_model(path)


def test_no_card(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "nocard.onnx", None)
    with pytest.raises(ModelError, match="no model card"):
        load_model(path)


def test_card_passed_in_replaces_missing_card(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "nocard.onnx", None)
    assert load_model(path, card=make_card()).card.name == "tiny"


def test_wrong_input_name(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "m.onnx", make_card(), in_name="input_1")
    with pytest.raises(ModelError, match=r"expects input 'window'.*input_1"):
        load_model(path)


def test_wrong_output_name(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "m.onnx", make_card(), out_name="recon")
    with pytest.raises(ModelError, match=r"output 'error'.*recon"):
        load_model(path)


def test_wrong_dtype(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "m.onnx", make_card(), in_type=TensorProto.DOUBLE)
    with pytest.raises(ModelError, match=r"'window' is tensor\(double\)"):
        load_model(path)


def test_model_window_differs_from_card(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "m.onnx", make_card(), window=8)
    with pytest.raises(ModelError, match=r"input 'window' has shape \['batch', 8, 3\]"):
        load_model(path)


def test_model_signal_count_differs_from_card(tmp_path: Path) -> None:
    path = square_error_model(tmp_path / "m.onnx", make_card(), n=2)
    with pytest.raises(ModelError, match="input 'window' has shape"):
        load_model(path)


def test_missing_signal_in_config(model_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing \['pump.vib'\]"):
        load_model(model_path, signals=["pump.current", "pump.temp"])


def test_unexpected_signal_in_config(model_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unexpected \['pump.flow'\]"):
        load_model(model_path, signals=[*SIGNALS, "pump.flow"])


def test_signal_order_matters(model_path: Path) -> None:
    with pytest.raises(ModelError, match="different order"):
        load_model(model_path, signals=list(reversed(SIGNALS)))


def test_window_mismatch_with_config(model_path: Path) -> None:
    with pytest.raises(ModelError, match="window 16 configured, model card has 4"):
        load_model(model_path, window=16)


def test_nan_input_names_the_signal(model_path: Path) -> None:
    model = load_model(model_path)
    x = np.zeros((2, 4, 3), dtype=np.float32)
    x[1, 2, 1] = np.nan
    with pytest.raises(ModelError, match=r"NaN/inf values for pump.temp"):
        model.errors(x)


def test_wrong_window_shape_at_run(model_path: Path) -> None:
    model = load_model(model_path)
    with pytest.raises(ModelError, match=r"expected \[batch, 4, 3\]"):
        model.errors(np.zeros((1, 5, 3)))


def test_bad_card_json_beside_model(model_path: Path) -> None:
    model_path.with_name("tiny.card.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"tiny.card.json: not valid JSON"):
        load_model(model_path)


def test_card_missing_key(model_path: Path) -> None:
    data = make_card().to_dict()
    del data["threshold"]
    model_path.with_name("tiny.card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="missing key 'threshold'"):
        load_model(model_path)


def test_card_unknown_key(model_path: Path) -> None:
    data = {**make_card().to_dict(), "treshold": 1.0}
    model_path.with_name("tiny.card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"unknown keys \['treshold'\]"):
        load_model(model_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"std": (1.0, 0.0, 1.0)}, "std must be > 0"),
        ({"mean": (1.0, 2.0)}, "mean/std have 2/3 values"),
        ({"threshold": float("nan")}, "must be finite"),
        ({"signals": ("a", "a", "b")}, "duplicate signal"),
        ({"window": 0}, "must be positive"),
        ({"score": "max"}, "unknown score"),
    ],
)
def test_inconsistent_card(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        make_card(**changes)


def test_calibrate_card_fits_normalisation_and_threshold(model_path: Path) -> None:
    model = load_model(model_path)
    rng = np.random.default_rng(7)
    rows = rng.normal(loc=(100.0, 20.0, 3.0), scale=(4.0, 1.0, 0.2), size=(400, 3))
    card = calibrate_card(model, rows)
    np.testing.assert_allclose(card.mean, rows.mean(axis=0))
    np.testing.assert_allclose(card.std, rows.std(axis=0))
    assert card.version == 2
    calibrated = model.with_card(card)
    scores = calibrated.score(sliding_windows(calibrated.normalise(rows), 4))
    assert np.mean(scores > card.threshold) < 0.01
    shifted = calibrated.normalise(rows[:4] + np.array([20.0, 0.0, 0.0]))
    assert calibrated.score(shifted)[0] > card.threshold


def test_calibrate_card_rejects_nan_and_short_history(model_path: Path) -> None:
    model = load_model(model_path)
    with pytest.raises(ModelError, match="needs"):
        calibrate_card(model, np.ones((3, 3)))
    rows = np.ones((50, 3))
    rows[10, 0] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        calibrate_card(model, rows)


def test_threads_must_be_positive(model_path: Path) -> None:
    with pytest.raises(ModelError, match="threads"):
        load_model(model_path, threads=0)


def test_tflite_without_runtime_or_bad_file_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match=r"m.tflite: (not a valid TFLite|\.tflite needs)"):
        load_model(path)


def test_thread_count_does_not_change_results(model_path: Path) -> None:
    x = np.random.default_rng(3).normal(size=(8, 4, 3)).astype(np.float32)
    one = load_model(model_path, threads=1).errors(x)
    two = load_model(model_path, threads=2).errors(x)
    np.testing.assert_allclose(one, two, rtol=1e-6)


def test_inference_failure_is_a_model_error(tmp_path: Path) -> None:
    # A graph that fails at run time (Reshape to an impossible shape), not at load.
    nodes = [
        helper.make_node("Reshape", ["window", "shape"], ["flat"]),
        helper.make_node("ReduceMean", ["flat", "axes"], ["error"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "broken",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", 4, 3])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 5, 3]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {CARD_KEY: make_card().to_json()})
    path = tmp_path / "broken.onnx"
    onnx.save(model, path)
    loaded = load_model(path)
    with pytest.raises(ModelError, match=r"broken\.onnx: inference failed"):
        loaded.errors(np.zeros((1, 4, 3), dtype=np.float32))


def test_card_signals_must_be_a_list(model_path: Path) -> None:
    data = {**make_card().to_dict(), "signals": "pump.current"}
    model_path.with_name("tiny.card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="'signals' must be a list"):
        load_model(model_path)
