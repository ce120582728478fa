"""Replay a CSV of history through the live detection path, for backtesting.

Each CSV row becomes samples (one per signal column; an empty or non-numeric
cell is a BAD sample), appended to a :class:`~edge_agent.twin.windows.Windows`
exactly as the recorder does live; then :meth:`Detector.step` runs at the row's
time, as the detector loop does every ``interval``. The only difference from
live is ``settle`` = 0: a CSV has no samples in flight, so a grid point is
scored at its own tick rather than ``settle`` seconds later (same window, same
score). So a replay shows what the agent would have said, row by row:
``ts,score,alarm`` (``score`` empty when the row's window was not scored:
warm-up, gap or BAD value; ``alarm`` 1 while the model alert of the asset is
open, shadow assets included). A prognostic asset gives ``ts,rul`` instead (the
remaining life in the card's unit, empty during the first ``window - 1`` rows of
a run); an anomaly asset with a ``prognosis:`` trend adds ``rul,rul_low,rul_high``
(seconds to the alarm threshold, on the rows where it was estimated).

CSV: a header row; a time column named ``timestamp``, ``datetime``, ``time`` or
``ts`` (epoch seconds, or ISO 8601; naive times are UTC); one column per signal,
named like the asset's signals (full name, or the part after the source
prefix, ignoring case and punctuation). ``,`` or ``;`` separated (SKAB uses ``;``).
Other columns (SKAB's ``anomaly``, ``changepoint``) are ignored.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.detect.align import SeriesSource
from edge_agent.detect.slot import match_signals
from edge_agent.errors import ModelError
from edge_agent.types import Alert, Quality, Sample

if TYPE_CHECKING:
    from edge_agent.detect.detector import Detector
    from edge_agent.detect.prognosis import Prognosis

TIME_COLUMNS = ("timestamp", "datetime", "time", "ts")


class ReplayError(ValueError):
    """The CSV cannot be replayed (no time column, a missing signal, a bad timestamp)."""


@dataclass(frozen=True, slots=True)
class Table:
    """A CSV read into columns: time text and epoch, and values per signal (NaN where bad)."""

    stamps: list[str]
    ts: np.ndarray
    values: dict[str, np.ndarray]

    def series(self, signal: str, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """``(ts, values)`` of one signal over ``rows``."""
        return self.ts[rows], self.values[signal][rows]

    def samples(self, row: int) -> list[Sample]:
        """The samples of one row."""
        ts = float(self.ts[row])
        out = []
        for signal, column in self.values.items():
            value = float(column[row])
            bad = math.isnan(value)
            out.append(
                Sample(signal, ts, None if bad else value, Quality.BAD if bad else Quality.GOOD)
            )
        return out


def read_table(path: Path, signals: Sequence[str], optional: Sequence[str] = ()) -> Table:
    """Read ``path``, keeping the columns of ``signals`` (and of ``optional`` ones present).

    Raises:
        ReplayError: unreadable file, no time column, a signal without a column,
            or a timestamp that cannot be parsed (named with its line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    lines = text.splitlines()
    if not lines:
        raise ReplayError(f"{path}: empty file")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    time_col = _time_column(header, path)
    try:
        columns = match_signals(signals, header, str(path))
    except ModelError as exc:
        raise ReplayError(str(exc)) from None
    signals = list(signals)
    for extra in optional:
        if extra not in signals and _has_column(extra, header):
            signals.append(extra)
            columns += match_signals([extra], header, str(path))
    index = [header.index(c) for c in columns]
    stamps, raw, line_of = [], [], []
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        stamps.append(row[time_col].strip() if time_col < len(row) else "")
        raw.append([_number(row[i]) if i < len(row) else math.nan for i in index])
        line_of.append(reader.line_num)
    ts = np.array([_epoch(s, path, n) for n, s in zip(line_of, stamps, strict=True)])
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise ReplayError(f"{path}:{line_of[i]}: time goes backwards ({stamps[i]})")
    matrix = np.array(raw, dtype=np.float64).reshape(len(raw), len(signals))
    return Table(stamps, ts, {s: matrix[:, i] for i, s in enumerate(signals)})


def _has_column(signal: str, header: list[str]) -> bool:
    try:
        match_signals([signal], header, "")
    except ModelError:
        return False
    return True


def _time_column(header: list[str], path: Path) -> int:
    lowered = [h.lower() for h in header]
    for name in TIME_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    raise ReplayError(f"{path}: no time column (one of {', '.join(TIME_COLUMNS)})")


def _number(cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        return math.nan  # garbage in a cell is a BAD sample, never a crash
    return value if math.isfinite(value) else math.nan


def _epoch(stamp: str, path: Path, line: int) -> float:
    try:
        return float(stamp)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise ReplayError(f"{path}:{line}: cannot read time {stamp!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class Row:
    """One replayed row: its time as written, the score of its window, the alarm state.

    ``prognosis`` is the remaining life estimated at this row's step, if any.
    """

    stamp: str
    score: float | None
    alarm: bool
    prognosis: Prognosis | None = None


def capacity(table: Table, seconds: float) -> int:
    """Samples per signal the windows must hold for ``seconds`` of this CSV."""
    gaps = np.diff(table.ts)
    positive = gaps[gaps > 0]
    dt = float(np.median(positive)) if positive.size else 1.0
    return max(64, int(2 * seconds / dt) + 16)


def replay(
    detector: Detector,
    asset: str,
    table: Table,
    start: int = 0,
    alerts: list[Alert] | None = None,
) -> list[Row]:
    """Run the detector loop over the table's time; one :class:`Row` per table row.

    As live, time advances in ``detect.interval`` ticks on the epoch grid; each
    tick first appends the rows whose time has come, then steps. Ticks without
    rows still step (a lost row is scored from held values, as live), and a gap
    longer than the windows is crossed with one step inside it (all values stale)
    instead of thousands. Rows before ``start`` (calibration rows) fill the
    windows without steps, so the first scored windows may use them. The alert
    events of every step (model and rules) are appended to ``alerts`` if given.
    """
    from edge_agent.twin.windows import Windows

    windows = Windows(capacity(table, detector.window_seconds()))
    out = [Row(table.stamps[i], None, False) for i in range(min(start, len(table.stamps)))]
    for i in range(len(out)):
        windows.append(table.samples(i))
    interval = detector.config.interval
    horizon = detector.window_seconds() + 2 * interval
    i, n = len(out), len(table.stamps)
    tick = math.ceil(float(table.ts[i]) / interval - 1e-9) * interval if i < n else 0.0
    while i < n:
        first = i
        while i < n and table.ts[i] <= tick + 1e-9:
            windows.append(table.samples(i))
            i += 1
        score, alarm, found = _step(detector, asset, windows, tick, alerts)
        out += [Row(table.stamps[j], score, alarm, found) for j in range(first, i)]
        tick += interval
        if i < n and table.ts[i] - tick > horizon:
            _step(detector, asset, windows, tick + horizon, alerts)
            tick = math.ceil(float(table.ts[i]) / interval - 1e-9) * interval
    return out


def _step(
    detector: Detector,
    asset: str,
    windows: SeriesSource,
    now: float,
    alerts: list[Alert] | None,
) -> tuple[float | None, bool, Prognosis | None]:
    before = detector.scores().get(asset)
    told = detector.latest.get(asset)
    events = detector.step(windows, now)
    if alerts is not None:
        alerts.extend(events)
    latest = detector.latest.get(asset)
    found = latest if latest is not None and latest is not told else None
    if asset in detector.prognostic:
        return None, False, found
    scored = detector.scores()[asset]
    fresh = scored.score if scored is not None and scored is not before else None
    return fresh, detector.assets[asset].tracker.is_open, found


def write_alerts(path: Path, alerts: Sequence[Alert]) -> None:
    """One JSON object per alert event, as the outbox would carry it."""
    with path.open("w", encoding="utf-8") as handle:
        for alert in alerts:
            handle.write(json.dumps(alert.to_dict()) + "\n")


def columns(detector: Detector, asset: str) -> tuple[str, ...]:
    """The output columns for ``asset``: ``rul`` for a prognostic one, plus the trend's."""
    if asset in detector.prognostic:
        return ("ts", "rul")
    if asset in detector.trends:
        return ("ts", "score", "alarm", "rul", "rul_low", "rul_high")
    return ("ts", "score", "alarm")


def write_rows(
    path: Path, rows: Sequence[Row], names: Sequence[str] = ("ts", "score", "alarm")
) -> None:
    """One CSV line per input row, with the columns ``names`` (see :func:`columns`).

    ``score`` is empty when the row's window was not scored, ``rul`` (and the
    trend's ``rul_low``/``rul_high``) when no remaining life was estimated at
    the row (warm-up, a gap, an unbounded interval end).
    """
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(names))
        for row in rows:
            writer.writerow([_cell(row, name) for name in names])


def _cell(row: Row, name: str) -> str | int:
    if name == "ts":
        return row.stamp
    if name == "alarm":
        return int(row.alarm)
    if name == "score":
        value = row.score
    else:
        found = row.prognosis
        value = (
            None
            if found is None
            else {"rul": found.rul, "rul_low": found.low}.get(name, found.high)
        )
    return "" if value is None else f"{value:.6g}"
