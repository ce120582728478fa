"""Bounds under long synthetic runs: rows and file size stop growing."""

from __future__ import annotations

from pathlib import Path

from edge_agent.twin.config import TwinConfig
from tests.twin.conftest import T0, feed, open_store

SIGNALS = [f"plc{i // 10}.tag{i % 10}" for i in range(40)]
SLOTS = 150


WAL_BOUND = 1000 * 4096 + 1024 * 1024
"""Autocheckpoint at 1000 pages, plus one transaction: the -wal file never exceeds it."""


def wal_bytes(path: Path) -> int:
    """Size of the WAL beside ``path``."""
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_rows_and_file_size_stop_growing_after_the_rings_fill(db: Path) -> None:
    config = TwinConfig.model_validate(
        {"max_samples": SLOTS, "rollup_max_age": "30m", "sync": "normal"}
    )
    laps = 16
    store = open_store(db, config, T0)
    sizes, wal, now = [], 0, [T0]
    store.clock = lambda: now[0]
    for step, batch in enumerate(feed(SIGNALS, SLOTS * laps, dt=5.0)):
        now[0] = batch[0].ts
        store.write(batch)
        wal = max(wal, wal_bytes(db))
        if (step + 1) % SLOTS == 0:  # one lap of the rings: measure the main file
            store._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            sizes.append(db.stat().st_size)
    samples = store._conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    rollups = store._conn.execute("SELECT count(*) FROM rollups").fetchone()[0]
    store.close()
    assert samples == len(SIGNALS) * SLOTS
    assert rollups <= len(SIGNALS) * config.rollup_slots()
    # Rings are full after lap 1, rollups (30 min at 5 s steps) after lap 3; pages then
    # settle at their fill factor within a few laps. The second half must not grow.
    half = sizes[laps // 2 :]
    assert max(half) - min(half) <= max(2 * 4096, 0.03 * min(half)), sizes
    assert max(sizes) <= samples * 48 + rollups * 96 + 64 * 1024, sizes
    assert wal <= WAL_BOUND
