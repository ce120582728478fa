"""A full disk: write() keeps going, logs once, counts what it drops, recovers."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from tests.twin.conftest import T0, feed, open_store

SIGNALS = [f"plc.tag{i}" for i in range(50)]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def fill_until_full(store_path: Path, config: TwinConfig, steps: int) -> tuple[SignalStore, int]:
    """Write until the store reports full; return the store and the steps written."""
    store = open_store(store_path, config, T0 + 10_000)
    for step, batch in enumerate(feed(SIGNALS, steps)):
        store.write(batch)  # never raises for a full disk
        assert store.latest()[SIGNALS[0]] == batch[0]  # the latest view keeps up
        if store.health.full:
            return store, step
    raise AssertionError("the store never filled")


def test_size_cap_refuses_writes_without_raising_and_reopens_larger(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.twin")
    small = TwinConfig.model_validate({"max_samples": 5000, "max_size": "256KB"})
    store, step = fill_until_full(db, small, 2000)
    for batch in feed(SIGNALS, 30, start=T0 + step + 1):
        store.write(batch)
    assert store.health.full and store.health.dropped >= 31 * len(SIGNALS)
    assert len(errors(caplog)) == 1 and "full" in errors(caplog)[0]
    kept = store.history(SIGNALS[0], 0.0)
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    larger = open_store(db, TwinConfig.model_validate({"max_samples": 5000}), T0 + 10_000)
    assert larger.history(SIGNALS[0], 0.0) == kept
    more = list(feed(SIGNALS, 5, start=T0 + 5000))
    for batch in more:
        larger.write(batch)
    assert not larger.health.full
    assert larger.history(SIGNALS[0], 0.0)[-5:] == [b[0] for b in more]
    larger.close()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root); skipped where it cannot be mounted."""
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_filesystem_then_space_returns(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.twin")
    filler = tiny_fs / "filler"
    filler.write_bytes(b"\0" * 600_000)
    db = tiny_fs / "twin.db"
    config = TwinConfig.model_validate({"max_samples": 2000, "sync": "normal"})
    store, step = fill_until_full(db, config, 2000)
    for batch in feed(SIGNALS, 10, start=T0 + step + 1):
        store.write(batch)
    assert store.health.full and len(errors(caplog)) == 1
    filler.unlink()  # space returns
    after = list(feed(SIGNALS, 3, start=T0 + 3000))
    for batch in after:
        store.write(batch)
    assert not store.health.full
    resumed = [r for r in caplog.records if "resumed" in r.getMessage()]
    assert len(resumed) == 1 and resumed[0].levelno == logging.WARNING
    assert store.history(SIGNALS[1], T0 + 3000) == [b[1] for b in after]
    store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
