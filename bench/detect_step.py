"""Cost of one detection step, against the bare model call it wraps.

A step of :class:`Detector` does, per asset: look at the model files (hot swap,
at most once a second of wall time: live at 1 s steps that is every step, in this
loop once a second of the loop's run), gather the signals' newest samples out of
the windows and hold them on the model's step (when the grid moved by one step:
keep the last window and read one new row), normalise, run the model, judge and
debounce; and per rule: look at the latest sample (or a few recent ones) and,
when the rule may act, read its series and judge. The raw loop is the least any
detector must do: one ``model.errors()`` call on a window that is already aligned
and normalised. Ten assets (each the same model on its own 8 signals) give the
cost per asset when a detector has many.

Synthetic 1 Hz data (the card's mean and std), the shipped int8 SKAB pump model
(8 signals x 20 steps); one step per simulated second, as live.

Usage: ``python -m bench.detect_step [--steps N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

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
NOTE = (
    "Where the time of a step with 10 rules goes (phases timed inside this loop, p50, load "
    "about 1-2.7): the hot-swap check 0.3 us (three stats, 6-13 us, at most once a second of "
    "wall time: in this fast loop almost never, live at 1 s steps at every step), grid 1, "
    "alignment of the 8 signals 9 (the window of the step before moved on by one grid step: "
    "one new row read out of the twin's rings, 6 in a tight loop; afresh, after a gap, a BAD "
    "value, a late sample or a skipped step, about 21, and 10 more to start following again "
    "when the grid moves by one step), normalisation 3, model.errors() 31-32 (27 in the raw "
    "loop's warm tight loop: caches), score and lifecycle 2-4, the score/alarm/health samples "
    "4, the 10 rules 5.5 (a settled threshold or bad-quality rule whose latest value is within "
    "its limits about 0.2 us; the flatline rule about 2, from a few recent samples that "
    "already differ, 9 for its whole step; a rule runs its whole step only when it may raise, "
    "clear or count). p99 on a shared machine is scheduling, not work.\n\n"
    "How a window is followed: when the grid moved by exactly one step, the aligner keeps the "
    "rows of the last window and reads one new row per signal out of the rings "
    "(`Windows.last_at`: Python floats through a flat memoryview), provided every ring is in "
    "time order, every sample that arrived since is newer than the old grid's end, the "
    "samples the kept rows hold are still in the rings, and the new row passes the same age "
    "and NaN checks; otherwise it gathers and holds afresh as before. A followed window is a "
    "view of a buffer three windows long whose rows are never written again (an alert's "
    "evidence may keep it). Same scores, alerts and logs: `edge-agent replay` over the SKAB "
    "files (17 files, 3 configs with and without rules, calibrated or not) byte-identical to "
    "the previous code, and random fault streams give the aligner's definition cell for cell "
    "at every step.\n"
)


def _signals(model_signals: tuple[str, ...], source: str = "pump") -> list[str]:
    return [f"{source}.{s.lower().replace(' ', '_')}" for s in model_signals]


def _rules(signals: list[str]) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for i, s in enumerate(signals):
        rules.append({"name": f"hi{i}", "type": "threshold", "signal": s, "above": 1e9})
    rules.append({"name": "stuck", "type": "flatline", "signal": signals[0], "for": "1m"})
    rules.append({"name": "bad", "type": "bad_quality", "signal": signals[1], "for": "10s"})
    return rules


def _detector(with_rules: bool, assets: int = 1) -> tuple[Detector, list[str]]:
    card = load_model(MODEL).card
    names = ["pump"] + [f"pump{k}" for k in range(1, assets)]
    configs = [
        {"name": name, "model": str(MODEL), "signals": _signals(card.signals, name)}
        for name in names
    ]
    signals = _signals(card.signals)
    config = DetectConfig.model_validate(
        {"assets": configs, "rules": _rules(signals) if with_rules else []}
    )
    return Detector.load(config, Path), [s for c in configs for s in c["signals"]]


def _data(steps: int, n: int) -> np.ndarray:
    card = load_model(MODEL).card
    rng = np.random.default_rng(0)
    per_asset = len(card.signals)
    data = rng.normal(card.mean, card.std, size=(steps, n // per_asset, per_asset))
    return data.reshape(steps, n)


def time_steps(steps: int, with_rules: bool, assets: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per Detector.step (append excluded) per asset, and per model call in it."""
    det, signals = _detector(with_rules, assets)
    calls = _time_model_calls(det)
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
        out[i] = (time.perf_counter() - start) / assets
    return out, np.array(calls)


def _time_model_calls(det: Detector) -> list[float]:
    """Wrap each asset's ``model.errors`` to record how long the call takes inside a step."""
    calls: list[float] = []
    for asset in det.assets.values():
        model = asset.slot.model
        errors = model.errors

        def timed(windows: np.ndarray, errors: Any = errors) -> np.ndarray:
            start = time.perf_counter()
            out: np.ndarray = errors(windows)
            calls.append(time.perf_counter() - start)
            return out

        setattr(model, "errors", timed)  # noqa: B010 - an instance attribute, for the bench only
    return calls


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


def _row(label: str, found: tuple[float, float], raw: float) -> str:
    return f"| {label} | {found[0]:.0f} | {found[1]:.0f} | {found[0] / raw:.1f} |"


def main(argv: list[str] | None = None) -> int:
    """Measure and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.detect_step")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory():
        raw = _us(time_raw(args.steps))
        raw_ort = _us(time_raw(args.steps, "onnxruntime"))
        asset, in_step = (_us(x) for x in time_steps(args.steps, False))
        rules = _us(time_steps(args.steps, True)[0])
        many = _us(time_steps(args.steps, False, assets=10)[0])
        rate = replay_rate(args.steps)
    load += Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "| loop | p50 us | p99 us | p50 / raw |",
        "|---|---|---|---|",
        _row("raw: model.errors() on a ready window (numpy engine, as shipped)", raw, raw[0]),
        _row("raw, onnxruntime engine (`engine: onnxruntime`)", raw_ort, raw[0]),
        _row("Detector.step, 1 asset (8 signals x 20)", asset, raw[0]),
        _row("... of which model.errors() inside that step", in_step, raw[0]),
        _row("Detector.step, 1 asset + 10 rules", rules, raw[0]),
        _row("Detector.step, 10 assets, per asset", many, raw[0]),
    ]
    body = (
        f"Model `models/skab_pump.onnx` (int8), {args.steps} steps of synthetic 1 Hz data, "
        f"one thread. Load average (1, 5, 15 min) before: {' '.join(load[:3])}, after: "
        f"{' '.join(load[3:])} (2 cores shared with other jobs).\n\n"
        + "\n".join(lines)
        + f"\n\nAgainst the onnxruntime raw call ({raw_ort[0]:.0f} us): 1 asset "
        f"{asset[0] / raw_ort[0]:.1f}x, 1 asset + 10 rules {rules[0] / raw_ort[0]:.1f}x."
        + f"\n\nReplay (windows + steps, no CSV parsing): {rate:,.0f} rows/s.\n\n"
        + NOTE
    )
    print(body)
    if not args.no_write:
        write_section("detect_step", "Detection step cost", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
