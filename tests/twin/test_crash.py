"""kill -9 during writes: the file stays sound, nothing committed is lost, restart works."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge_agent.twin.store import SignalStore
from tests.twin.crash_writer import CONFIG, SIGNALS, STEPS_PER_BATCH, T0, value

ROOT = Path(__file__).resolve().parents[2]
KILLS = 12


class Writer:
    """The crash writer in a subprocess; a thread collects its acknowledgements."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.twin.crash_writer", str(db)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.start: int | None = None
        self.acked = -1
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, step = line.split()
            if kind == "start":
                self.start = int(step)
                self.started.set()
            else:
                self.acked = int(step)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=10)


def newest_step(db: Path) -> int:
    """Newest step of the last signal, read with plain sqlite3 after an integrity check."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        store = SignalStore.open(db, CONFIG, readonly=True)
        latest = store.latest()[SIGNALS[-1]]
        store.close()
        return int(latest.ts - T0)
    finally:
        conn.close()


def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "twin.db"
    rng = random.Random(7)
    expected_start = 0
    for _ in range(KILLS):
        writer = Writer(db)
        assert writer.started.wait(timeout=20), "writer did not start"
        assert writer.start == expected_start  # resumed right after what survived
        time.sleep(rng.uniform(0.05, 0.4))
        writer.kill()
        newest = newest_step(db)
        # Committed batches survive; at most the batch in flight (one flush) is lost.
        assert writer.acked <= newest <= writer.acked + STEPS_PER_BATCH
        expected_start = newest + 1
    check_contents(db, expected_start - 1)


def check_contents(db: Path, newest: int) -> None:
    """Rings hold the last steps with no gap; every closed minute counts 60 samples."""
    store = SignalStore.open(db, CONFIG)
    store.clock = lambda: T0
    for sid, name in enumerate(SIGNALS):
        history = store.history(name, 0.0)
        steps = [int(s.ts - T0) for s in history]
        assert steps == list(range(newest - len(steps) + 1, newest + 1))
        assert len(steps) == min(newest + 1, CONFIG.max_samples)
        assert all(s.value == value(sid, k) for s, k in zip(history, steps, strict=True))
        minutes = store.rollups(name, T0, T0 + newest)
        assert [int(r.ts - T0) // 60 for r in minutes] == list(range(newest // 60 + 1))
        for r in minutes[:-1]:
            first = int(r.ts - T0)
            want = [value(sid, k) for k in range(first, first + 60)]
            assert (r.count, r.min, r.max, r.last) == (60, min(want), max(want), want[-1])
    store.close()


def test_readers_beside_a_running_writer_see_consistent_snapshots(tmp_path: Path) -> None:
    db = tmp_path / "twin.db"
    writer = Writer(db)
    try:
        assert writer.started.wait(timeout=20), "writer did not start"
        while writer.acked < 200:
            assert writer.proc.poll() is None, "writer died"
            time.sleep(0.01)
        for _ in range(20):  # what `edge-agent twin status/export` does, while writes go on
            store = SignalStore.open(db, CONFIG, readonly=True)
            store.clock = lambda: T0
            newest = int(store.latest()[SIGNALS[0]].ts - T0)
            steps = [int(s.ts - T0) for s in store.history(SIGNALS[0], 0.0)]
            store.close()
            assert steps == list(range(newest - len(steps) + 1, newest + 1))
    finally:
        writer.kill()
