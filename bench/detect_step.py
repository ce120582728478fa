"""Cost of one detection step, against the bare model call it wraps.

A step of :class:`Detector` does, per asset: stat the model files (hot swap),
read each signal's series out of the windows, align them on the model's step,
normalise, run the model, judge and debounce; and per rule: read one series and
judge. The raw loop is the least any detector must do: one ``model.errors()``
call on a window that is already aligned and normalised.

Synthetic 1 Hz data (the card's mean and std), the shipped int8 SKAB pump model
(8 signals x 20 steps); one step per simulated second, as live.

Usage: ``python -m bench.detect_step [--steps N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import write_section
from edge_agent.detect.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.model import load_model
from edge_agent.detect.replay import Table, replay
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

MODEL = Path(__file__).resolve().parent.parent / "models" / "skab_pump.onnx"
T0 = 1_800_000_000.0


def _signals(model_signals: tuple[str, ...]) -> list[str]:
    return [f"pump.{s.lower().replace(' ', '_')}" for s in model_signals]


def _rules(signals: list[str]) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for i, s in enumerate(signals):
        rules.append({"name": f"hi{i}", "type": "threshold", "signal": s, "above": 1e9})
    rules.append({"name": "stuck", "type": "flatline", "signal": signals[0], "for": "1m"})
    rules.append({"name": "bad", "type": "bad_quality", "signal": signals[1], "for": "10s"})
    return rules


def _detector(with_rules: bool) -> tuple[Detector, list[str]]:
    card = load_model(MODEL).card
    signals = _signals(card.signals)
    asset = {"name": "pump", "model": str(MODEL), "signals": signals}
    config = DetectConfig.model_validate(
        {"assets": [asset], "rules": _rules(signals) if with_rules else []}
    )
    return Detector.load(config, Path), signals


def _data(steps: int, n: int) -> np.ndarray:
    card = load_model(MODEL).card
    rng = np.random.default_rng(0)
    return rng.normal(card.mean, card.std, size=(steps, n))


def time_steps(steps: int, with_rules: bool) -> np.ndarray:
    """Seconds per Detector.step (append excluded)."""
    det, signals = _detector(with_rules)
    windows = Windows(capacity=max(64, int(det.window_seconds() * 20)))
    data = _data(steps, len(signals))
    out = np.empty(steps)
    for i, row in enumerate(data):
        ts = T0 + i
        windows.append(
            [Sample(s, ts, float(v), Quality.GOOD) for s, v in zip(signals, row, strict=True)]
        )
        start = time.perf_counter()
        det.step(windows, ts + 0.3)
        out[i] = time.perf_counter() - start
    return out


def time_raw(steps: int, engine: str = "auto") -> np.ndarray:
    """Seconds per bare model call on a ready window: the floor."""
    model = load_model(MODEL, engine=engine)
    data = model.normalise(_data(steps, len(model.card.signals)))
    w = model.card.window
    out = np.empty(steps - w)
    for i in range(steps - w):
        window = data[i : i + w][np.newaxis]
        start = time.perf_counter()
        model.errors(window)
        out[i] = time.perf_counter() - start
    return out


def replay_rate(rows: int) -> float:
    """Rows per second through ``replay`` (windows + steps, no CSV parsing)."""
    det, signals = _detector(False)
    data = _data(rows, len(signals))
    ts = T0 + np.arange(rows, dtype=np.float64)
    table = Table([str(t) for t in ts], ts, {s: data[:, i] for i, s in enumerate(signals)})
    start = time.perf_counter()
    replay(det, "pump", table)
    return rows / (time.perf_counter() - start)


def _us(samples: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(samples, 50) * 1e6), float(np.percentile(samples, 99) * 1e6)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.detect_step")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory():
        raw = _us(time_raw(args.steps))
        raw_ort = _us(time_raw(args.steps, "onnxruntime"))
        asset = _us(time_steps(args.steps, False))
        rules = _us(time_steps(args.steps, True))
        rate = replay_rate(args.steps)
    lines = [
        "| loop | p50 us | p99 us | p50 / raw |",
        "|---|---|---|---|",
        f"| raw: model.errors() on a ready window (numpy engine, as the detector runs it) "
        f"| {raw[0]:.0f} | {raw[1]:.0f} | 1.0 |",
        f"| raw, onnxruntime engine (`engine: onnxruntime`) | {raw_ort[0]:.0f} "
        f"| {raw_ort[1]:.0f} | {raw_ort[0] / raw[0]:.1f} |",
        f"| Detector.step, 1 asset (8 signals x 20) | {asset[0]:.0f} | {asset[1]:.0f} "
        f"| {asset[0] / raw[0]:.1f} |",
        f"| Detector.step, 1 asset + 10 rules | {rules[0]:.0f} | {rules[1]:.0f} "
        f"| {rules[0] / raw[0]:.1f} |",
    ]
    body = (
        f"Model `models/skab_pump.onnx` (int8), {args.steps} steps of synthetic 1 Hz data, "
        "one thread.\n\n" + "\n".join(lines) + f"\n\nReplay (windows + steps, no CSV "
        f"parsing): {rate:,.0f} rows/s.\n"
    )
    print(body)
    if not args.no_write:
        write_section("detect_step", "Detection step cost", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
