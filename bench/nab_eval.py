"""NAB realKnownCause (machine temperature and friends) with NAB's own scoring.

A deliberately simple causal detector, through the same code as the agent's
models: a one-signal ONNX change model built by ``train_graph.build_model``
(error = squared difference between the mean of the last 6 rows and the mean
of the rows before them in the window), calibrated on the probationary rows
with ``model.calibrate_card`` (normalisation, threshold = factor x the largest
calibration score), scored row by row. An alert is raised when the score
reaches the threshold and cleared below 0.8 x threshold; NAB sees a detection
at each raise (an alert is one event, not one per row). int8 (dynamic
quantisation of the MatMul) and fp32 are both scored.

NAB tunes one threshold over its 58-file corpus; here the factor is fixed per
row of the table, and all three factors tried are shown.

Usage: ``python -m bench.nab_eval [--data DIR] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.nab_metrics import PROFILES, normalised, probation, raw_score
from bench.report import write_section
from edge_agent.detect.card import ModelCard
from edge_agent.detect.model import calibrate_card, load_model, sliding_windows
from edge_agent.train.data import read_table
from edge_agent.train.graph import build_model, quantise_int8

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nab"
RECENT = 6
BASELINE = 288
FACTORS = (1.0, 1.5, 2.0)
CLEAR_BELOW = 0.8
MACHINE = "machine_temperature_system_failure.csv"
PUBLISHED = """\
| published (NAB v1.0 scoreboard, corpus-tuned threshold) | standard |
|---|---|
| machine_temperature_system_failure: ARTime | 82.0 |
| machine_temperature_system_failure: Numenta HTM | 67.0 |
| ambient_temperature_system_failure: ARTime | 91.4 |
| ec2_request_latency_system_failure: Numenta HTM | 78.4 |
| all 7 realKnownCause files pooled: ARTime | 63.9 |
| whole corpus (58 files): ARTime / Numenta HTM / CAD OSE | 74.9 / 70.5 / 69.9 |"""


@dataclass(frozen=True, slots=True)
class Series:
    """One NAB file with its labelled windows as row ranges."""

    name: str
    ts: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]


def load(data: Path) -> list[Series]:
    """Every realKnownCause file with its windows from combined_windows.json."""
    labels = json.loads((data / "labels" / "combined_windows.json").read_text())
    out = []
    for path in sorted((data / "realKnownCause").glob("*.csv")):
        table = read_table(path)
        stamps = [_row_of(table.ts, w) for w in labels[f"realKnownCause/{path.name}"]]
        out.append(Series(path.name, table.ts, table.columns["value"], stamps))
    return out


def _row_of(ts: np.ndarray, window: list[str]) -> tuple[int, int]:
    start, end = (read_time(t) for t in window)
    return int(np.searchsorted(ts, start)), int(np.searchsorted(ts, end))


def read_time(text: str) -> float:
    """NAB window stamps (``2013-12-10 06:25:00.000000``) as epoch seconds, UTC."""
    import datetime as dt

    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def change_model(folder: Path, window: int, step: float) -> dict[str, Path]:
    """fp32 and int8 change models for one signal and this window."""
    weights = np.concatenate(
        [np.full(window - RECENT, -1.0 / (window - RECENT)), np.full(RECENT, 1.0 / RECENT)]
    )
    card = ModelCard(
        "nab_change",
        ("value",),
        window,
        step,
        (0.0,),
        (1.0,),
        1.0,
        calibration={"quantile": 1.0, "factor": 1.0},
    )
    fp32 = folder / f"change_{window}.fp32.onnx"
    fp32.write_bytes(build_model(card, np.eye(1), np.ones(1), weights))
    int8 = folder / f"change_{window}.onnx"
    quantise_int8(fp32, int8)
    return {"fp32": fp32, "int8": int8}


def detections(path: Path, s: Series, factor: float) -> np.ndarray:
    """Rows where an alert is raised (causal; calibrated on the probationary rows)."""
    model = load_model(path)
    model = model.with_card(model.card.replace(calibration={"quantile": 1.0, "factor": factor}))
    rows = s.values.reshape(-1, 1)
    calibrated = model.with_card(calibrate_card(model, rows[: probation(len(rows))]))
    w = calibrated.card.window
    score = np.full(len(rows), -np.inf)
    score[w - 1 :] = calibrated.score(sliding_windows(calibrated.normalise(rows), w))
    return raise_events(score, calibrated.card.threshold)


def raise_events(score: np.ndarray, threshold: float) -> np.ndarray:
    """Alert lifecycle: raise at the threshold, clear under CLEAR_BELOW x threshold."""
    out = np.zeros(score.size, dtype=bool)
    open_ = False
    for i, value in enumerate(score):
        if not open_ and value >= threshold:
            out[i] = open_ = True
        elif open_ and value < CLEAR_BELOW * threshold:
            open_ = False
    return out


def score_all(series: list[Series], folder: Path) -> dict[tuple[str, float], dict[str, float]]:
    """Normalised standard score per (model kind, factor): per file and pooled per profile."""
    results: dict[tuple[str, float], dict[str, float]] = {}
    models: dict[int, dict[str, Path]] = {}
    for kind, factor in [(k, f) for k in ("int8", "fp32") for f in FACTORS]:
        raw: dict[str, list[float]] = {p: [] for p in PROFILES}
        row: dict[str, float] = {}
        for s in series:
            window = min(RECENT + BASELINE, probation(len(s.values)) // 2)
            if window not in models:
                models[window] = change_model(folder, window, float(np.median(np.diff(s.ts))))
            hits = detections(models[window][kind], s, factor)
            for name, profile in PROFILES.items():
                value = raw_score(hits, s.windows, profile)
                raw[name].append(value)
                if name == "standard":
                    row[s.name] = normalised([value], len(s.windows), profile)
        n_windows = sum(len(s.windows) for s in series)
        for name, profile in PROFILES.items():
            row[f"pooled {name}"] = normalised(raw[name], n_windows, profile)
        results[(kind, factor)] = row
    return results


def main(argv: list[str] | None = None) -> int:
    """Score every file and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.nab_eval")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # onnxruntime's quantiser advice, once per model
    series = load(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        results = score_all(series, Path(tmp))
    text = _body(series, results)
    print(text)
    if not args.no_write:
        write_section("nab_eval", "NAB realKnownCause: simple causal change model", text)
    return 0


def _body(series: list[Series], results: dict[tuple[str, float], dict[str, float]]) -> str:
    names = [s.name for s in series]
    head = [
        "model, factor",
        *[n.removesuffix(".csv") for n in names],
        "pooled standard",
        "pooled low FP",
        "pooled low FN",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (kind, factor), row in results.items():
        cells = [
            f"{kind}, {factor}",
            *[f"{row[n]:.1f}" for n in names],
            *[f"{row[f'pooled {p}']:.1f}" for p in PROFILES],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    return f"""\
Detector: window = {RECENT} recent rows + up to {BASELINE} older rows (at most half the
probationary rows); score = squared (recent mean - older mean) in calibration units;
threshold = factor x the largest score over the probationary rows; one detection per raised
alert (cleared under {CLEAR_BELOW} x threshold). Per-file columns: NAB standard profile,
normalised per file. Probationary rows: min(15 %, 750), not scored.

{table}

{PUBLISHED}

The machine temperature series ({MACHINE}) is the industrial one; the others are IT and
city data. This is a floor, not a tuned detector: NAB tunes one threshold over its corpus.
"""


if __name__ == "__main__":
    raise SystemExit(main())
