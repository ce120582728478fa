"""Fixtures for the twin tests: a store on a temporary file and a synthetic feed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0
"""Synthetic time base (2027-01-15): tests pin the store's clock near it."""


def feed(
    signals: list[str], steps: int, start: float = T0, dt: float = 1.0, seed: int = 1
) -> Iterator[list[Sample]]:
    """One batch per step: every signal's next sample, about 5 % of them BAD."""
    rng = random.Random(seed)
    for step in range(steps):
        ts = start + step * dt
        batch = []
        for name in signals:
            if rng.random() < 0.05:
                batch.append(Sample.bad(name, ts))
            else:
                quality = Quality.UNCERTAIN if rng.random() < 0.05 else Quality.GOOD
                batch.append(Sample(name, ts, rng.gauss(50.0, 10.0), quality))
        yield batch


def open_store(path: Path, config: TwinConfig, now: float) -> SignalStore:
    """Open a store whose clock says ``now``."""
    store = SignalStore.open(path, config)
    store.clock = lambda: now
    return store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh twin file."""
    return tmp_path / "twin.db"
