"""A run of BAD samples keeps its first and newest sample and never evicts GOOD history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.queries import compact_slots, ring_slots
from edge_agent.types import Quality, Sample
from tests.twin.conftest import T0, open_store

SIGNAL = "line.temp"


def good(i: int, signal: str = SIGNAL) -> Sample:
    return Sample(signal, T0 + i, float(i), Quality.GOOD)


def bad(i: int, signal: str = SIGNAL) -> Sample:
    return Sample.bad(signal, T0 + i)


def test_a_long_bad_run_keeps_the_good_history(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=10), T0 + 5000)
    store.write([good(i) for i in range(8)])
    for start in range(8, 4008, 100):  # 4,000 BAD samples, 40 batches
        store.write([bad(i) for i in range(start, start + 100)])
    history = store.history(SIGNAL, 0.0)
    assert history == [*(good(i) for i in range(8)), bad(8), bad(4007)]
    assert store.latest()[SIGNAL] == bad(4007)
    assert store.rollups(SIGNAL, 0.0)[-1].bad > 0  # the rollups count every BAD sample
    assert sum(r.bad for r in store.rollups(SIGNAL, 0.0)) == 4000
    store.close()


def test_good_after_a_bad_run_takes_new_slots(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=6), T0 + 100)
    store.write([good(0), bad(1), bad(2), bad(3), good(4), bad(5), good(6)])
    assert store.history(SIGNAL, 0.0) == [good(0), bad(1), bad(3), good(4), bad(5), good(6)]
    store.close()


def test_runs_are_per_signal_within_one_batch(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=5), T0 + 100)
    batch = []
    for i in range(20):
        batch += [bad(i), good(i, "line.flow")]
    store.write([good(-1), *batch])
    assert store.history(SIGNAL, 0.0) == [good(-1), bad(0), bad(19)]
    assert store.history("line.flow", 0.0) == [good(i, "line.flow") for i in range(15, 20)]
    store.close()


def test_a_bad_run_goes_on_compactly_after_a_restart(db: Path) -> None:
    config = TwinConfig(max_samples=8)
    store = open_store(db, config, T0 + 100)
    store.write([good(0), good(1), bad(2), bad(3), bad(4)])
    store.close()
    store = open_store(db, config, T0 + 100)
    store.write([bad(i) for i in range(5, 50)])
    # the restart costs one slot: the run's newest sample before it stays
    assert store.history(SIGNAL, 0.0) == [good(0), good(1), bad(2), bad(4), bad(49)]
    store.close()


def test_compact_slots_matches_ring_slots_without_bad_samples() -> None:
    rng = np.random.default_rng(3)
    sid = rng.integers(1, 6, size=200)
    heads_a, heads_b = np.zeros(6, np.int64), np.zeros(6, np.int64)
    runs = np.zeros(6, np.int64)
    expected = ring_slots(heads_a, sid, 7)
    got = compact_slots(heads_b, runs, sid, np.zeros(200, dtype=bool), 7)
    assert got.tolist() == expected.tolist()
    assert heads_a.tolist() == heads_b.tolist()


def test_window_rollups_combine_stored_and_open_minutes(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=1000), T0 + 400)
    start = T0 - T0 % 60
    values = [float(i % 7) for i in range(300)]
    samples = [
        Sample.bad(SIGNAL, start + i) if i % 11 == 0 else Sample(SIGNAL, start + i, v, Quality.GOOD)
        for i, v in enumerate(values)
    ]
    for chunk in range(0, 300, 30):
        store.write(samples[chunk : chunk + 30])
    window = store.window_rollups(start + 60, start + 300)  # minutes 1-3 stored, 4 open
    inside = [s for s in samples if start + 60 <= s.ts < start + 300]
    goods = [s.value for s in inside if s.value is not None]
    rollup = window[SIGNAL]
    assert (rollup.count, rollup.bad) == (len(goods), len(inside) - len(goods))
    assert (rollup.min, rollup.max, rollup.last) == (min(goods), max(goods), goods[-1])
    assert rollup.mean is not None and abs(rollup.mean - sum(goods) / len(goods)) < 1e-9
    assert store.window_rollups(start + 600, start + 660) == {}
    store.close()


def test_mixed_batches_match_a_sample_by_sample_model(db: Path) -> None:
    # Reference: per signal, a BAD sample after two BAD ones replaces the newest.
    rng = np.random.default_rng(7)
    signals = [f"line.s{i}" for i in range(6)]
    ring = 9
    store = open_store(db, TwinConfig(max_samples=ring), T0 + 10_000)
    expected: dict[str, list[Sample]] = {name: [] for name in signals}
    step = 0
    for _ in range(40):
        batch = []
        for _ in range(int(rng.integers(1, 60))):
            name = signals[int(rng.integers(0, len(signals)))]
            is_bad = rng.random() < (0.9 if name.endswith(("s0", "s1")) else 0.1)
            sample = bad(step, name) if is_bad else good(step, name)
            kept = expected[name]
            run = len(kept) >= 2 and all(s.quality == Quality.BAD for s in kept[-2:])
            if is_bad and run:
                kept[-1] = sample
            else:
                kept.append(sample)
            batch.append(sample)
            step += 1
        store.write(batch)
    for name in signals:
        assert store.history(name, 0.0) == expected[name][-ring:], name
    store.close()
