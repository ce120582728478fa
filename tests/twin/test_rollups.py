"""Minute rollups against a numpy reference, across restarts and late samples."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.rollup_buffer import _singles, _sorted_groups
from edge_agent.twin.rollups import Rollup
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample
from tests.twin.conftest import T0, open_store

SIGNALS = ["line.a", "line.b"]


def irregular(seconds: float, start: float = T0, seed: int = 3) -> list[list[Sample]]:
    """Batches of samples at irregular times (0.3-9 s apart), 10 % BAD, several per batch."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    for name in SIGNALS:
        ts = start + rng.random()
        while ts < start + seconds:
            if rng.random() < 0.1:
                samples.append(Sample.bad(name, ts))
            else:
                samples.append(Sample(name, ts, rng.uniform(-50.0, 150.0), Quality.GOOD))
            ts += rng.uniform(0.3, 9.0)
    samples.sort(key=lambda s: s.ts)
    return [samples[i : i + 7] for i in range(0, len(samples), 7)]


def reference(samples: list[Sample], signal: str) -> list[Rollup]:
    """Per-minute min/max/mean/last/count/bad of one signal, with numpy."""
    mine = sorted((s for s in samples if s.signal == signal), key=lambda s: s.ts)
    ts = np.array([s.ts for s in mine])
    values = np.array([math.nan if s.value is None else s.value for s in mine])
    minutes = np.floor(ts / 60.0).astype(np.int64)
    result = []
    for minute in np.unique(minutes):
        sel = minutes == minute
        good = values[sel][~np.isnan(values[sel])]
        last = good[-1] if good.size else None
        result.append(
            Rollup(
                float(minute) * 60.0,
                float(good.min()) if good.size else None,
                float(good.max()) if good.size else None,
                float(good.mean()) if good.size else None,
                None if last is None else float(last),
                int(good.size),
                int(np.isnan(values[sel]).sum()),
            )
        )
    return result


def assert_same(got: list[Rollup], want: list[Rollup]) -> None:
    assert [r.ts for r in got] == [r.ts for r in want]
    for a, b in zip(got, want, strict=True):
        assert (a.count, a.bad, a.min, a.max, a.last) == (b.count, b.bad, b.min, b.max, b.last)
        assert (a.mean is None) == (b.mean is None)
        if a.mean is not None and b.mean is not None:
            assert math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-9)


def test_rollups_match_numpy(db: Path) -> None:
    batches = irregular(600.0)
    store = open_store(db, TwinConfig(), T0 + 700)
    for batch in batches:
        store.write(batch)
    flat = [s for batch in batches for s in batch]
    for name in SIGNALS:
        assert_same(store.rollups(name, T0 - 60), reference(flat, name))
    store.close()


def test_rollups_survive_restarts_mid_minute(db: Path) -> None:
    batches = irregular(900.0, seed=5)
    config = TwinConfig()
    store = open_store(db, config, T0 + 1000)
    for i, batch in enumerate(batches):
        store.write(batch)
        if i % 23 == 11:  # close and reopen at arbitrary points
            store.close()
            store = open_store(db, config, T0 + 1000)
    flat = [s for batch in batches for s in batch]
    for name in SIGNALS:
        assert_same(store.rollups(name, T0 - 60), reference(flat, name))
    store.close()
    reader = SignalStore.open(db, config, readonly=True)
    reader.clock = lambda: T0 + 1000
    for name in SIGNALS:  # the reader sees the closed minutes, not the open one
        assert_same(reader.rollups(name, T0 - 60), reference(flat, name)[:-1])
    reader.close()


def test_late_samples_merge_into_closed_minutes(db: Path) -> None:
    store = open_store(db, TwinConfig(), T0 + 1000)
    early = [Sample("line.a", T0 + i * 10.0, float(i), Quality.GOOD) for i in range(30)]
    store.write(early)
    late = [Sample("line.a", T0 + 5.0, -1.0, Quality.GOOD), Sample.bad("line.a", T0 + 65.0)]
    store.write(late)
    assert_same(store.rollups("line.a", T0 - 60), reference(early + late, "line.a"))
    store.close()


def test_rollups_keep_only_rollup_max_age(db: Path) -> None:
    config = TwinConfig.model_validate({"rollup_max_age": "10m"})
    store = open_store(db, config, T0 + 3600)
    for minute in range(60):
        store.write([Sample("line.a", T0 + minute * 60.0, float(minute), Quality.GOOD)])
    got = store.rollups("line.a", 0.0)
    assert [r.last for r in got] == [float(m) for m in range(50, 60)]
    rows = store._conn.execute("SELECT count(*) FROM rollups").fetchone()[0]
    assert rows <= 11
    store.close()


@pytest.mark.parametrize("seed", range(4))
def test_random_batches_delays_and_restarts_match_numpy(db: Path, seed: int) -> None:
    rng = random.Random(seed)
    samples = [s for batch in irregular(900.0, seed=seed) for s in batch]
    arrival = [(s.ts + (rng.uniform(0, 300) if rng.random() < 0.05 else 0.0), s) for s in samples]
    arrival.sort(key=lambda pair: pair[0])  # about 5 % arrive up to 5 minutes late
    config = TwinConfig()
    store = open_store(db, config, T0 + 2000)
    i = 0
    while i < len(arrival):
        size = rng.randint(1, 60)
        batch = [s for _, s in arrival[i : i + size]]
        rng.shuffle(batch)  # arrival order inside a batch does not matter
        store.write(batch)
        i += size
        if rng.random() < 0.05:
            store.close()
            store = open_store(db, config, T0 + 2000)
    for name in SIGNALS:
        assert_same(store.rollups(name, T0 - 60), reference(samples, name))
    store.close()


def test_changing_rollup_max_age_keeps_the_newest_minutes(db: Path) -> None:
    store = open_store(db, TwinConfig.model_validate({"rollup_max_age": "30m"}), T0 + 3600)
    for minute in range(60):
        store.write([Sample("line.a", T0 + minute * 60.0, float(minute), Quality.GOOD)])
    store.close()
    shorter = open_store(db, TwinConfig.model_validate({"rollup_max_age": "5m"}), T0 + 3600)
    assert [r.last for r in shorter.rollups("line.a", 0.0)] == [55.0, 56.0, 57.0, 58.0, 59.0]
    assert shorter._conn.execute("SELECT count(*) FROM rollups").fetchone()[0] <= 6
    shorter.close()


def ticks(seconds: int, names: list[str], seed: int) -> list[list[Sample]]:
    """One sample per signal per second (a 1 s poll flushed every second), 10 % BAD, shuffled."""
    rng = random.Random(seed)
    batches = []
    for second in range(seconds):
        batch = [
            Sample.bad(name, T0 + second + 0.01 * k)
            if rng.random() < 0.1
            else Sample(name, T0 + second + 0.01 * k, rng.uniform(-5.0, 5.0), Quality.GOOD)
            for k, name in enumerate(names)
        ]
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def test_one_sample_per_signal_batches_match_numpy(db: Path) -> None:
    names = [f"line.s{i}" for i in range(12)]
    batches = ticks(200, names, seed=7)
    store = open_store(db, TwinConfig(), T0 + 300)
    for batch in batches:
        store.write(batch)
    flat = [s for batch in batches for s in batch]
    for name in names:
        assert_same(store.rollups(name, T0 - 60), reference(flat, name))
    store.close()


def test_singles_group_like_the_sorted_path() -> None:
    rng = np.random.default_rng(11)
    sid = rng.permutation(40)
    minute = rng.integers(100, 102, size=40)
    ts = minute * 60.0 + rng.uniform(0, 60, size=40)
    val = np.where(rng.random(40) < 0.2, np.nan, rng.normal(size=40))
    fast = _singles(sid, minute, ts, val.copy())
    slow = _sorted_groups(sid, minute, ts, val.copy())
    order = np.argsort(fast.sid)
    for name in (f.name for f in dataclasses.fields(fast)):
        np.testing.assert_array_equal(getattr(fast, name)[order], getattr(slow, name), name)
