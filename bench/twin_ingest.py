"""Sustained ingest into the twin with its bounds enforced, beside raw sqlite3.

For 100 and 10,000 signals the rings are first filled (so every write overwrites
old slots and the bound is in force), then a fixed number of samples is written
in flush-sized batches through :meth:`SignalStore.write` (rings, latest values,
rollups, heads, incremental pruning) and, in the same run, through a minimal raw
loop: ``executemany`` of the same samples into a plain 4-column table, one
transaction per batch, same pragmas. A second table compares ring layouts
(fixed slots vs append-and-delete) on the SQL alone, with file sizes.

Run from the repository root: ``python -m bench.twin_ingest`` (``--quick`` for a
short dev run that does not touch BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.report import write_section
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0


@dataclass
class Case:
    """One ingest shape: signals, samples per signal per flush, ring slots."""

    signals: int
    steps_per_batch: int
    slots: int
    batches: int
    synchronous: str = "normal"

    @property
    def per_batch(self) -> int:
        return self.signals * self.steps_per_batch


def make_batches(case: Case, start_step: int, count: int) -> list[list[Sample]]:
    """``count`` batches of every signal's next samples (2 % BAD)."""
    rng = random.Random(start_step)
    names = [f"plc{i // 100}.tag{i % 100}" for i in range(case.signals)]
    batches = []
    for b in range(count):
        batch = []
        for k in range(case.steps_per_batch):
            ts = T0 + (start_step + b * case.steps_per_batch + k) * 0.1
            for name in names:
                if rng.random() < 0.02:
                    batch.append(Sample.bad(name, ts))
                else:
                    batch.append(Sample(name, ts, rng.random() * 100.0, Quality.GOOD))
        batches.append(batch)
    return batches


def file_bytes(path: Path) -> int:
    """Main file plus WAL."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


class Raw:
    """A plain unbounded table, same pragmas: the baseline.

    ``prebuilt=False``: the samples' own fields (signal name, quality text),
    converted inside the timed call. ``prebuilt=True``: integer ids, tuples built
    before timing: SQLite's own floor.
    """

    def __init__(self, path: Path, synchronous: str, prebuilt: bool) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self.conn.execute("CREATE TABLE samples (signal, ts REAL, value REAL, quality)")
        self.prebuilt = prebuilt
        self.elapsed = 0.0

    def write(self, batch: list[Sample], built: list[tuple[object, ...]]) -> None:
        start = time.perf_counter()
        rows = built if self.prebuilt else [(s.signal, s.ts, s.value, s.quality) for s in batch]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows)
        self.conn.execute("COMMIT")
        self.elapsed += time.perf_counter() - start


def run_case(case: Case, folder: Path) -> dict[str, float]:
    """Twin and both raw loops, interleaved batch by batch so load spikes hit all three."""
    tag = f"{case.signals}-{case.synchronous}"
    path = folder / f"twin-{tag}.db"
    config = TwinConfig.model_validate({"max_samples": case.slots, "sync": case.synchronous})
    store = SignalStore.open(path, config)
    store.clock = lambda: T0 + 86400.0
    fill = -(-case.slots // case.steps_per_batch)
    for batch in make_batches(case, 0, fill):
        store.write(batch)
    before = file_bytes(path)
    raw = Raw(folder / f"raw-{tag}.db", case.synchronous, prebuilt=False)
    floor = Raw(folder / f"floor-{tag}.db", case.synchronous, prebuilt=True)
    batches = make_batches(case, fill * case.steps_per_batch, case.batches)
    ids = {name: i for i, name in enumerate(dict.fromkeys(s.signal for s in batches[0]))}
    twin_elapsed = 0.0
    for batch in batches:
        built: list[tuple[object, ...]] = [(ids[s.signal], s.ts, s.value, 0) for s in batch]
        start = time.perf_counter()
        store.write(batch)
        twin_elapsed += time.perf_counter() - start
        raw.write(batch, built)
        floor.write(batch, built)
    rows = store._conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    store.close()
    total = case.batches * case.per_batch
    return {
        "twin": total / twin_elapsed,
        "raw": total / raw.elapsed,
        "floor": total / floor.elapsed,
        "before": before,
        "after": file_bytes(path),
        "rows": rows,
    }


def ingest_table(cases: list[Case], folder: Path) -> str:
    """The main table: store vs raw per case."""
    lines = [
        "| signals | samples/flush | ring slots/signal | synchronous | twin samples/s "
        "| raw samples/s | twin/raw | raw prebuilt samples/s | twin/prebuilt "
        "| file before -> after (MB) | rows |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for case in cases:
        r = run_case(case, folder)
        lines.append(
            f"| {case.signals:,} | {case.per_batch:,} | {case.slots:,} | {case.synchronous} "
            f"| {r['twin']:,.0f} | {r['raw']:,.0f} | {r['twin'] / r['raw']:.2f} "
            f"| {r['floor']:,.0f} | {r['twin'] / r['floor']:.2f} "
            f"| {r['before'] / 1e6:.1f} -> {r['after'] / 1e6:.1f} | {r['rows']:,.0f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


LAYOUTS: dict[str, tuple[str, Callable[[int, int, int], list[tuple[object, ...]]], str | None]] = {
    "fixed slots, rowid = (slot << 20) + signal id (chosen)": (
        "CREATE TABLE s (id INTEGER PRIMARY KEY, ts REAL, value REAL, q INT)",
        lambda sid, n, cap: [((n % cap) << 20 | sid, T0 + n, random.random(), 0)],
        "INSERT OR REPLACE INTO s VALUES (?, ?, ?, ?)",
    ),
    "fixed slots, key (signal, slot) WITHOUT ROWID": (
        "CREATE TABLE s (sid INT, slot INT, ts REAL, value REAL, q INT, "
        "PRIMARY KEY (sid, slot)) WITHOUT ROWID",
        lambda sid, n, cap: [(sid, n % cap, T0 + n, random.random(), 0)],
        "INSERT OR REPLACE INTO s VALUES (?, ?, ?, ?, ?)",
    ),
    "append + delete, key (signal, seq) WITHOUT ROWID": (
        "CREATE TABLE s (sid INT, seq INT, ts REAL, value REAL, q INT, "
        "PRIMARY KEY (sid, seq)) WITHOUT ROWID",
        lambda sid, n, cap: [(sid, n, T0 + n, random.random(), 0)],
        None,
    ),
}


def run_layout(name: str, signals: int, cap: int, laps: int, folder: Path) -> tuple[float, int]:
    """Samples/s in steady state and final file size for one ring layout."""
    ddl, row, upsert = LAYOUTS[name]
    path = folder / "layout.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(ddl)
    elapsed, written = 0.0, 0
    for n in range(cap * laps):
        rows = [r for sid in range(signals) for r in row(sid, n, cap)]
        start = time.perf_counter()
        conn.execute("BEGIN")
        if upsert is not None:
            conn.executemany(upsert, rows)
        else:
            conn.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?)", rows)
            if n >= cap:
                conn.executemany(
                    "DELETE FROM s WHERE sid = ? AND seq = ?",
                    [(sid, n - cap) for sid in range(signals)],
                )
        conn.execute("COMMIT")
        if n >= cap:
            elapsed += time.perf_counter() - start
            written += signals
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return written / elapsed, path.stat().st_size


def layout_table(signals: int, cap: int, laps: int, folder: Path) -> str:
    """Ring layouts compared on SQL alone: one sample per signal per transaction."""
    lines = [
        f"Ring layouts, SQL only: {signals:,} signals, {cap} slots each, one sample per "
        f"signal per transaction, {laps} laps of the ring (steady state timed after lap 1).",
        "",
        "| layout | samples/s | file after (MB) |",
        "|---|---:|---:|",
    ]
    for name in LAYOUTS:
        rate, size = run_layout(name, signals, cap, laps, folder)
        lines.append(f"| {name} | {rate:,.0f} | {size / 1e6:.1f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and record it in BENCHMARKS.md (unless ``--quick``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run, no report")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    cases = [
        Case(100, 10, 10_000, 1000 // scale),
        Case(10_000, 1, 100, 100 // scale),
        Case(100, 10, 10_000, 200 // scale, "full"),
        Case(10_000, 1, 100, 50 // scale, "full"),
    ]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        ingest = ingest_table(cases, folder)
        layouts = layout_table(10_000, 20, 3 if args.quick else 5, folder)
    if args.quick:
        return
    body = (
        "Sustained ingest with the ring bound in force (rings full before timing), "
        "one `write()` per flush (ring rows, latest values, minute rollups, heads, "
        "incremental age pruning), vs raw `executemany` into a plain unbounded table "
        "in the same run with the same pragmas. *raw*: the samples' own fields "
        "(name, quality text) converted in the loop, as a naive recorder would; "
        "*raw prebuilt*: integer ids, tuples built before timing (SQLite's floor). "
        "Goal: twin/raw >= 0.5. File size: main file + WAL, after filling the rings "
        "and after the timed run (the WAL is truncated at checkpoints, so it can shrink).\n\n"
        f"{ingest}\n\n{layouts}\n"
    )
    write_section("twin_ingest", "Twin ingest (bench/twin_ingest.py)", body)


if __name__ == "__main__":
    main()
