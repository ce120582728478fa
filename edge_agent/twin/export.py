"""Writing a signal's history out: CSV, JSON lines, and a PNG plot.

Rows carry the epoch timestamp (exact, for machines) and an ISO 8601 UTC time
(for people). matplotlib is optional (``pip install 'plant-edge-agent[plot]'``) and is
imported only by :func:`plot`.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from edge_agent.twin.rollups import Rollup
from edge_agent.types import Sample

SAMPLE_FIELDS: tuple[str, ...] = ("ts", "time", "value", "quality")
ROLLUP_FIELDS: tuple[str, ...] = ("ts", "time", "min", "max", "mean", "last", "count", "bad")


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def iso(ts: float) -> str:
    """``2026-11-22T14:03:07.250Z`` for an epoch timestamp."""
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sample_rows(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """One dict per sample, keys :data:`SAMPLE_FIELDS`."""
    return [
        {"ts": s.ts, "time": iso(s.ts), "value": s.value, "quality": str(s.quality)}
        for s in samples
    ]


def rollup_rows(rollups: Sequence[Rollup]) -> list[dict[str, Any]]:
    """One dict per minute, keys :data:`ROLLUP_FIELDS`."""
    return [
        {
            "ts": r.ts,
            "time": iso(r.ts),
            "min": r.min,
            "max": r.max,
            "mean": r.mean,
            "last": r.last,
            "count": r.count,
            "bad": r.bad,
        }
        for r in rollups
    ]


def write_rows(rows: list[dict[str, Any]], fields: Sequence[str], fmt: str, out: IO[str]) -> None:
    """Write ``rows`` as ``csv`` (header line; empty cell for no value) or ``jsonl``."""
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    for row in rows:
        out.write(json.dumps(row, allow_nan=False) + "\n")


def plot(
    signal: str,
    samples: Sequence[Sample],
    rollups: Sequence[Rollup],
    unit: str,
    out: Path,
) -> None:
    """Draw the samples (or the minute mean with its min-max band) into a PNG.

    Raises:
        PlotUnavailableError: matplotlib is not installed.
    """
    try:  # imported by name: an optional extra, typed as Any whether installed or not
        importlib.import_module("matplotlib").use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
        dates: Any = importlib.import_module("matplotlib.dates")
    except ImportError as exc:
        raise PlotUnavailableError(
            "plotting needs matplotlib: pip install 'plant-edge-agent[plot]'"
        ) from exc
    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    if rollups:
        times = [dt.datetime.fromtimestamp(r.ts, dt.UTC) for r in rollups]
        axes.fill_between(
            times,
            _nan(r.min for r in rollups),
            _nan(r.max for r in rollups),
            alpha=0.3,
            label="min-max per minute",
        )
        axes.plot(times, _nan(r.mean for r in rollups), label="mean per minute")
        axes.legend(loc="upper left")
    else:
        times = [dt.datetime.fromtimestamp(s.ts, dt.UTC) for s in samples]
        axes.plot(times, _nan(s.value for s in samples), linewidth=1.0)
    locator = dates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    axes.set_title(signal)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(unit or "value")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def _nan(values: Any) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]
