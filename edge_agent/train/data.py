"""Reading training and replay data: CSV files with a time column and signal columns.

Accepts comma- or semicolon-separated files (SKAB uses ``;``), with a header
row. The time column is the first column named ``ts``, ``timestamp``,
``datetime``, ``time`` or ``t``; it may hold epoch seconds or ISO dates.
Only numpy and the standard library are used, so the agent can read CSV for
replay without the training extras.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import ModelError

TIME_COLUMNS = ("ts", "timestamp", "datetime", "time", "t")


@dataclass(frozen=True, slots=True)
class Table:
    """One CSV file as arrays.

    Attributes:
        path: where it was read from.
        ts: epoch seconds per row (row numbers when the file has no time column).
        columns: float values per column name (NaN where a cell is empty or not a number).
    """

    path: Path
    ts: np.ndarray
    columns: dict[str, np.ndarray]

    def matrix(self, signals: Sequence[str]) -> np.ndarray:
        """The named columns as ``[rows, len(signals)]`` float64.

        Raises:
            ModelError: naming the columns the file lacks.
        """
        missing = [s for s in signals if s not in self.columns]
        if missing:
            raise ModelError(f"{self.path}: no column {missing}; has {list(self.columns)}")
        return np.column_stack([self.columns[s] for s in signals])


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        stamp = dt.datetime.fromisoformat(text.strip())
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_table(path: Path) -> Table:
    """Read one CSV file.

    Raises:
        ModelError: unreadable file, no header, ragged rows or bad time stamps.
    """
    try:
        with path.open(newline="") as fh:
            head = fh.readline()
            delimiter = ";" if head.count(";") > head.count(",") else ","
            fh.seek(0)
            rows = list(csv.reader(fh, delimiter=delimiter))
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if len(rows) < 2:
        raise ModelError(f"{path}: needs a header and at least one row")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    if any(len(r) != len(header) for r in body):
        raise ModelError(f"{path}: rows with a different number of fields than the header")
    time_col = next((i for i, h in enumerate(header) if h.lower() in TIME_COLUMNS), None)
    try:
        ts = (
            np.array([_parse_time(r[time_col]) for r in body])
            if time_col is not None
            else np.arange(len(body), dtype=np.float64)
        )
    except ValueError as exc:
        raise ModelError(f"{path}: bad time stamp ({exc})") from exc
    columns = {
        name: np.array([_number(r[i]) for r in body])
        for i, name in enumerate(header)
        if i != time_col
    }
    return Table(path, ts, columns)


def csv_files(paths: Sequence[Path]) -> list[Path]:
    """Expand directories into their ``*.csv`` files (sorted naturally), keep files."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.csv"), key=lambda p: (len(p.stem), p.stem))
            if not found:
                raise ModelError(f"{path}: no .csv files")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ModelError(f"training data not found: {path}")
    return out


def sha256(path: Path) -> str:
    """Hex sha256 of a file (for the model card's data provenance)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
