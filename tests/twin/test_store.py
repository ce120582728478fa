"""SignalStore: latest, history, catalogue, ring bounds, restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import StoreError
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import BAD_REPEAT, Quality, Sample, SignalInfo
from tests.twin.conftest import T0, feed, open_store

SIGNALS = ["press1.temp", "press1.pressure", "pump.flow"]


def test_latest_and_history_follow_the_writes(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=50), T0 + 100)
    batches = list(feed(SIGNALS, 30))
    for batch in batches:
        store.write(batch)
    assert store.latest() == {s.signal: s for s in batches[-1]}
    expected = [batch[1] for batch in batches]
    assert store.history("press1.pressure", 0.0) == expected
    assert store.history("press1.pressure", T0 + 10, T0 + 12) == expected[10:13]
    assert store.history("nope", 0.0) == []
    store.close()


def test_ring_keeps_the_newest_max_samples(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=7), T0 + 100)
    batches = list(feed(SIGNALS, 40))
    for batch in batches:
        store.write(batch)
    assert store.history("pump.flow", 0.0) == [b[2] for b in batches[-7:]]
    rows = store._conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert rows == 7 * len(SIGNALS)
    store.close()


def test_samples_older_than_max_age_are_hidden_then_deleted(db: Path) -> None:
    store = open_store(
        db, TwinConfig.model_validate({"max_samples": 100, "max_age": "10s"}), T0 + 29.5
    )
    for batch in feed(SIGNALS, 30):
        store.write(batch)
    kept = store.history("press1.temp", 0.0)
    assert [s.ts for s in kept] == [T0 + i for i in range(20, 30)]
    assert store.prune_expired() > 0  # the incremental pass may have taken a few already
    assert store.prune_expired() == 0
    rows = store._conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    assert rows == 10 * len(SIGNALS)
    store.close()


def test_restart_keeps_catalogue_latest_and_history(db: Path) -> None:
    config = TwinConfig(max_samples=10)
    store = open_store(db, config, T0 + 100)
    info = SignalInfo("press1.temp", "press1", 0.5, "press1", "degC", "oil temperature")
    store.register([info])
    batches = list(feed(SIGNALS, 25))
    for batch in batches:
        store.write(batch)
    before = (store.latest(), store.history("press1.temp", 0.0), store.signals())
    store.close()
    again = open_store(db, config, T0 + 100)
    assert (again.latest(), again.history("press1.temp", 0.0), again.signals()) == before
    assert info in again.signals()
    again.write([Sample("press1.temp", T0 + 25, 1.5, Quality.GOOD)])
    assert again.history("press1.temp", 0.0)[-1].value == 1.5
    assert len(again.history("press1.temp", 0.0)) == 10
    again.close()


def test_every_chunk_of_a_batch_writes_its_own_rows(db: Path) -> None:
    # 5 full multi-row chunks and a remainder, each chunk filling the same parameter list.
    store = open_store(db, TwinConfig(max_samples=3), T0 + 100)
    batch = [Sample(f"a.s{i}", T0 + i / 1e4, float(i), Quality.GOOD) for i in range(2_777)]
    store.write(batch)
    rows = store._conn.execute("SELECT ts, value FROM samples ORDER BY value").fetchall()
    assert rows == [(s.ts, s.value) for s in batch]
    store.close()


def test_register_takes_many_signals_at_once_the_last_entry_of_each(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=5), T0 + 100)
    store.write([Sample("x.auto", T0, 1.0, Quality.GOOD)])  # id 1, from a write
    first, changed = SignalInfo("a.t", "a", 1.0, unit="K"), SignalInfo("a.t", "a", 1.0, unit="C")
    many = [SignalInfo(f"a.s{i}", "a", 0.1) for i in range(3000)]
    store.register([first, *many, changed, SignalInfo("x.auto", "x", 2.0)])
    ids = dict(store._conn.execute("SELECT name, id FROM signals"))
    assert ids["x.auto"] == 1 and ids["a.t"] == 2 and ids["a.s0"] == 3
    assert sorted(ids.values()) == list(range(1, 3003))  # one id each, none skipped
    store.write([Sample(f"a.s{i}", T0 + 1, float(i), Quality.GOOD) for i in range(3000)])
    store.close()
    again = open_store(db, TwinConfig(max_samples=5), T0 + 100)
    by_name = {info.signal: info for info in again.signals()}
    assert by_name["a.t"] == changed and by_name["x.auto"].interval == 2.0
    assert again.history("a.s2999", 0.0)[0].value == 2999.0
    again.close()


def test_changing_max_samples_reslots_the_newest(db: Path) -> None:
    store = open_store(db, TwinConfig(max_samples=10), T0 + 100)
    batches = list(feed(SIGNALS, 25))
    for batch in batches:
        store.write(batch)
    store.close()
    smaller = open_store(db, TwinConfig(max_samples=4), T0 + 100)
    assert smaller.history("pump.flow", 0.0) == [b[2] for b in batches[-4:]]
    smaller.close()
    larger = open_store(db, TwinConfig(max_samples=20), T0 + 100)
    assert larger.history("pump.flow", 0.0) == [b[2] for b in batches[-4:]]
    for batch in feed(SIGNALS, 5, start=T0 + 25):
        larger.write(batch)
    assert len(larger.history("pump.flow", 0.0)) == 9
    larger.close()


def test_status_marks_stale_signals(db: Path) -> None:
    store = open_store(db, TwinConfig(stale_factor=3.0), T0 + 100)
    store.register(
        [
            SignalInfo("a.fast", "a", 1.0),
            SignalInfo("a.slow", "a", 60.0),
            SignalInfo("a.never", "a", 1.0),
        ]
    )
    store.write(
        [
            Sample("a.fast", T0 + 90, 1.0, Quality.GOOD),
            Sample("a.slow", T0 + 90, 2.0, Quality.GOOD),
            Sample("x.auto", T0, 3.0, Quality.GOOD),
        ]
    )
    status = {line.info.signal: line for line in store.status()}
    assert status["a.fast"].stale and status["a.fast"].age == pytest.approx(10.0)
    assert not status["a.slow"].stale
    assert status["a.never"].stale and status["a.never"].sample is None
    assert not status["x.auto"].stale  # interval unknown: never stale
    assert status["x.auto"].info.source == "x"
    store.close()


def test_a_bad_latest_value_is_stale_only_when_its_repeat_is_overdue(db: Path) -> None:
    """A down source marks its signals BAD every BAD_REPEAT, not every interval."""
    store = open_store(db, TwinConfig(stale_factor=3.0), T0 + 100)
    names = ("a.marked", "a.overdue", "a.good")
    store.register([SignalInfo(name, "a", 0.1) for name in names])
    store.write(
        [
            Sample.bad("a.marked", T0 + 100 - 2.5 * BAD_REPEAT),
            Sample.bad("a.overdue", T0 + 100 - 3.5 * BAD_REPEAT),
            Sample("a.good", T0 + 99, 1.0, Quality.GOOD),
        ]
    )
    status = {line.info.signal: line.stale for line in store.status()}
    assert status == {"a.marked": False, "a.overdue": True, "a.good": True}
    store.close()


def test_readonly_store_reads_and_refuses_writes(db: Path) -> None:
    writer = open_store(db, TwinConfig(), T0 + 100)
    batches = list(feed(SIGNALS, 5))
    for batch in batches:
        writer.write(batch)
    reader = SignalStore.open(db, TwinConfig(), readonly=True)
    reader.clock = lambda: T0 + 100
    assert reader.latest() == writer.latest()
    assert reader.history("pump.flow", 0.0) == [b[2] for b in batches]
    with pytest.raises(StoreError, match="read-only"):
        reader.write(batches[0])
    reader.close()
    writer.close()


def test_a_file_that_is_not_a_twin_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        SignalStore.open(path, TwinConfig())


def test_samples_without_a_valid_timestamp_are_dropped_and_counted(db: Path) -> None:
    store = open_store(db, TwinConfig(), T0 + 100)
    good = Sample("a.b", T0, 1.0, Quality.GOOD)
    store.write(
        [
            Sample("a.b", float("nan"), 2.0, Quality.GOOD),
            good,
            Sample("a.b", float("inf"), 3.0, Quality.GOOD),
        ]
    )
    assert store.history("a.b", 0.0) == [good] and store.latest()["a.b"] == good
    assert store.health.rejected == 2
    assert [r.count for r in store.rollups("a.b", T0 - 60, T0 + 60)] == [1]
    store.close()


@pytest.mark.parametrize(("level", "code"), [("normal", 1), ("full", 2), ("extra", 3)])
def test_sync_setting_reaches_sqlite(db: Path, level: str, code: int) -> None:
    store = SignalStore.open(db, TwinConfig.model_validate({"sync": level}))
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == code
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_second_writer_is_refused_until_the_first_closes(db: Path) -> None:
    first = SignalStore.open(db, TwinConfig())
    with pytest.raises(StoreError, match="another process is writing"):
        SignalStore.open(db, TwinConfig())
    reader = SignalStore.open(db, TwinConfig(), readonly=True)  # readers are welcome
    reader.close()
    first.close()
    SignalStore.open(db, TwinConfig()).close()


def test_one_batch_longer_than_the_ring_keeps_its_newest_samples(db: Path) -> None:
    # 1,234 samples of one signal in one write: multi-row INSERT chunks and the
    # remainder overwrite the same 7 slots, the last row for a slot winning.
    store = open_store(db, TwinConfig(max_samples=7), T0 + 2000)
    batch = [Sample("pump.flow", T0 + i, float(i), Quality.GOOD) for i in range(1234)]
    store.write([*batch[:3], Sample("press1.temp", T0, 1.0, Quality.GOOD), *batch[3:]])
    assert store.history("pump.flow", 0.0) == batch[-7:]
    assert store.history("press1.temp", 0.0) == [Sample("press1.temp", T0, 1.0, Quality.GOOD)]
    store.close()
