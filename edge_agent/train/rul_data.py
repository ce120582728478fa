"""C-MAPSS run-to-failure data: NASA's text files and the agent's replay CSV.

NASA's files (``train_FD001.txt``) are space-separated, no header, 26 columns:
unit, cycle, three operational settings, 21 sensors. The agent replays CSV
instead: a ``timestamp`` column (one cycle per second), ``setting1..3``,
``s1..s21`` and ``unit``; engines follow one another with a gap of
:data:`GAP_SECONDS` so that no window spans two engines. Both read into the
same :class:`Engine` list, so training from either gives the same model.

Only numpy and the standard library: the agent can read these without extras.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import ModelError

SIGNALS: tuple[str, ...] = (
    *(f"setting{i}" for i in range(1, 4)),
    *(f"s{i}" for i in range(1, 22)),
)
# Engines start at this epoch (2020-01-01 UTC) so replayed times are ordinary dates.
START_EPOCH = 1_577_836_800
# Seconds between the last cycle of one engine and the first of the next: far
# longer than any window, so the agent's windows never mix two engines.
GAP_SECONDS = 3_600


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine's history, in cycle order.

    Attributes:
        unit: engine number in its file.
        values: ``[cycles, len(SIGNALS)]`` float64 in :data:`SIGNALS` order.
    """

    unit: int
    values: np.ndarray

    @property
    def cycles(self) -> int:
        """Number of cycles recorded."""
        return int(self.values.shape[0])


def rul_targets(cycles: int, cap: float) -> np.ndarray:
    """RUL of each cycle of a run to failure, capped (piecewise-linear target).

    The last recorded cycle has RUL 0, as in NASA's convention for the training set.
    """
    return np.minimum(np.arange(cycles - 1, -1, -1, dtype=np.float64), cap)


def _split_units(units: np.ndarray, values: np.ndarray, origin: str) -> list[Engine]:
    """Group consecutive rows of the same unit into engines (units must not interleave)."""
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    ends = np.r_[starts[1:], len(units)]
    seen: set[int] = set()
    engines = []
    for a, b in zip(starts, ends, strict=True):
        unit = int(units[a])
        if unit in seen:
            raise ModelError(f"{origin}: rows of unit {unit} are not contiguous")
        seen.add(unit)
        engines.append(Engine(unit, values[a:b]))
    return engines


def read_cmapss(path: Path) -> list[Engine]:
    """Read a NASA C-MAPSS text file (``train_FD00x.txt`` or ``test_FD00x.txt``).

    Raises:
        ModelError: unreadable file, or not 26 numeric columns.
    """
    try:
        data = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path} as C-MAPSS text: {exc}") from exc
    if data.shape[1] != 2 + len(SIGNALS):
        raise ModelError(f"{path}: {data.shape[1]} columns, expected {2 + len(SIGNALS)}")
    return _split_units(data[:, 0].astype(np.int64), data[:, 2:], str(path))


def _column(header: list[str], name: str, path: Path) -> int:
    lowered = [h.strip().lower() for h in header]
    if name not in lowered:
        raise ModelError(f"{path}: no column {name!r}; has {header}")
    return lowered.index(name)


def _units_from_gaps(ts: np.ndarray) -> np.ndarray:
    """Number engines by the long gaps between them (for a CSV without ``unit``)."""
    gaps = np.diff(ts)
    return np.cumsum(np.r_[0, gaps > 2 * np.median(gaps)]) + 1


def read_replay_csv(path: Path) -> list[Engine]:
    """Read the agent's replay CSV back into engines (by ``unit``, else by time gaps).

    Raises:
        ModelError: unreadable file or a missing column.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle) if r]
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(rows) < 2:
        raise ModelError(f"{path}: needs a header and at least one row")
    header, body = rows[0], rows[1:]
    index = [_column(header, name, path) for name in SIGNALS]
    try:
        values = np.array([[float(r[i]) for i in index] for r in body])
        ts = np.array([float(r[_column(header, "timestamp", path)]) for r in body])
    except (ValueError, IndexError) as exc:
        raise ModelError(f"{path}: a cell is not a number or a row is short ({exc})") from exc
    lowered = [h.strip().lower() for h in header]
    if "unit" in lowered:
        units = np.array([int(float(r[lowered.index("unit")])) for r in body])
    else:
        units = _units_from_gaps(ts)
    return _split_units(units, values, str(path))


def write_replay_csv(engines: Sequence[Engine], path: Path) -> int:
    """Write engines as one replayable CSV: one cycle per second, a gap between engines.

    Returns:
        The number of data rows written.
    """
    t = START_EPOCH
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *SIGNALS, "unit"])
        for engine in engines:
            for row in engine.values:
                writer.writerow([t, *(format(v, ".10g") for v in row), engine.unit])
                t += 1
                rows += 1
            t += GAP_SECONDS
    return rows
