"""The async shells: alerts the outbox refuses at stop are spilled and re-queued at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from edge_agent.detect.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.errors import StorageError
from edge_agent.forward.config import OutboxConfig, SinkSettings
from edge_agent.forward.encode import TelemetrySummary
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import read_spill, requeue_spill
from edge_agent.forward.telemetry import telemetry_forever
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, Quality, Sample
from edge_agent.worker import Worker
from tests.forward.factory import make_alert


async def test_refused_alerts_are_spilled_at_stop_and_requeued_at_start(tmp_path: Path) -> None:
    worker = Worker()
    spill = tmp_path / "unsent-alerts.json"
    try:
        outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        await worker.run(outbox.close)  # the outbox refuses every put from now on
        detector = Detector(DetectConfig(), [], [])
        loop = DetectorLoop(detector, Windows(16), outbox, worker, "gw", 0.05, lambda: None)
        loop.spill = spill
        alerts = [make_alert(1), make_alert(2)]
        await loop.put(alerts)
        task = asyncio.create_task(loop.detect_forever())
        await asyncio.sleep(0.1)
        task.cancel()  # SIGTERM
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert [a.id for a in read_spill(spill)] == [a.id for a in alerts]

        fresh = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        assert await worker.run(requeue_spill, spill, fresh, "gw") == 2
        status = await worker.run(fresh.status)
        await worker.run(fresh.close)
    finally:
        worker.close()
    assert status.rows("up", "alert") == 2
    assert not spill.exists()


RULE = {"name": "hot", "type": "threshold", "signal": "p.t", "asset": "p", "above": 50.0}


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.close()


async def _stages(tmp_path: Path, worker: Worker) -> tuple[SignalStore, Outbox]:
    store = await worker.run(SignalStore.open, tmp_path / "twin.db", TwinConfig())
    outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["s"])
    return store, outbox


async def _wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_recorder_keeps_batch_cancelled_while_worker_busy(
    tmp_path: Path, worker: Worker
) -> None:
    store, outbox = await _stages(tmp_path, worker)
    recorder = Recorder(store, Windows(16), worker, flush_interval=0.01)
    gate = threading.Event()
    busy = asyncio.ensure_future(worker.run(gate.wait))  # e.g. inference or Outbox.status()
    recorder.accept([Sample("p.t", time.time(), 1.0, Quality.GOOD)])
    task = asyncio.create_task(recorder.record_forever())
    await _wait_for(lambda: not recorder.pending)  # the flush took the batch, it is queued
    task.cancel()  # SIGTERM
    gate.set()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await busy
    history = await worker.run(store.history, "p.t", 0.0)
    await worker.run(store.close)
    await worker.run(outbox.close)
    assert len(history) == 1, "the sample polled before SIGTERM never reached the twin"


async def test_recorder_keeps_batch_cancelled_while_write_runs(
    tmp_path: Path, worker: Worker
) -> None:
    """Fine: a cancel while _write already runs on the thread does not stop it."""
    store, outbox = await _stages(tmp_path, worker)
    recorder = Recorder(store, Windows(16), worker, flush_interval=0.01)
    recorder.accept([Sample("p.t", time.time(), 1.0, Quality.GOOD)])
    task = asyncio.create_task(recorder.record_forever())
    await _wait_for(lambda: recorder.written == 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    history = await worker.run(store.history, "p.t", 0.0)
    await worker.run(store.close)
    await worker.run(outbox.close)
    assert len(history) == 1


async def test_unsent_alerts_are_logged_at_shutdown(
    tmp_path: Path, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    store, outbox = await _stages(tmp_path, worker)
    await worker.run(outbox.close)  # the outbox refuses every put from now on
    detector = Detector(DetectConfig(), [], [])
    loop = DetectorLoop(detector, Windows(16), outbox, worker, "gw", 0.05, lambda: None)
    alert = make_alert(1)
    await loop.put([alert])
    assert loop.unsent == [alert]
    task = asyncio.create_task(loop.detect_forever())
    await asyncio.sleep(0.2)
    caplog.clear()
    task.cancel()  # SIGTERM
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.run(store.close)
    lost = [r for r in caplog.records if r.levelno >= logging.ERROR and alert.id in r.getMessage()]
    assert lost, "an alert lost at shutdown must be named in an ERROR line"


async def test_outbox_refusal_logged_once(
    tmp_path: Path, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    store, outbox = await _stages(tmp_path, worker)
    await worker.run(outbox.close)
    loop = DetectorLoop(Detector(DetectConfig(), [], []), Windows(16), outbox, worker, "gw", 0.01,
                        lambda: None)  # fmt: skip
    for n in range(5):
        await loop.put([make_alert(n)])
    await worker.run(store.close)
    errors = [r for r in caplog.records if "cannot store" in r.getMessage()]
    assert len(loop.unsent) == 5
    assert len(errors) == 1


class Broken:
    """An observer with a bug (the demo's screen, a test recorder)."""

    def on_samples(self, batch: Sequence[Sample]) -> None:
        pass

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        raise RuntimeError("observer bug")


async def test_observer_error_does_not_lose_alerts(tmp_path: Path, worker: Worker) -> None:
    store, outbox = await _stages(tmp_path, worker)
    config = DetectConfig.model_validate({"interval": "1s", "rules": [RULE]})
    detector = Detector.load(config, Path)
    windows = Windows(16)
    now = time.time()
    windows.append([Sample("p.t", now - 0.5, 80.0, Quality.GOOD)])
    loop = DetectorLoop(detector, windows, outbox, worker, "gw", 1.0, lambda: None, Broken())
    for step in range(3):
        with contextlib.suppress(RuntimeError):  # detect_forever logs and goes on
            await loop.step(now + step * 0.1)
    status = await worker.run(outbox.status)
    await worker.run(outbox.close)
    await worker.run(store.close)
    assert status.rows("s", "alert") == 1, "the raised alert never reached the outbox"


async def _full_outbox(tmp_path: Path, worker: Worker) -> tuple[SignalStore, Outbox]:
    store, outbox = await _stages(tmp_path, worker)
    now = time.time()
    # 300 signals over the last 10 s: a telemetry window's summaries need new pages
    samples = [
        Sample(f"p.t{n}", now - 10 + i, float(i), Quality.GOOD)
        for i in range(10)
        for n in range(300)
    ]
    await worker.run(store.write, samples)

    def fill() -> None:  # the outbox's disk is full: no page may be added
        db = outbox._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    await worker.run(fill)
    return store, outbox


async def test_full_outbox_error_says_full(tmp_path: Path, worker: Worker) -> None:
    store, outbox = await _full_outbox(tmp_path, worker)
    alerts = [make_alert(n) for n in range(200)]
    with pytest.raises(StorageError) as info:
        await worker.run(outbox.put_alerts, alerts, "gw")
    await worker.run(outbox.close)
    await worker.run(store.close)
    assert "full" in str(info.value)


async def test_failed_telemetry_put_does_not_skip_windows(tmp_path: Path, worker: Worker) -> None:
    store, outbox = await _full_outbox(tmp_path, worker)
    summary = TelemetrySummary("p.t", "p", 0.0, 60.0, 1, 0, 1.0, 1.0, 1.0, 1.0, "")
    with pytest.raises(StorageError):
        await worker.run(outbox.put_telemetry, [summary] * 300, "gw", ["s"], 60.0)
    until = await worker.run(outbox.telemetry_until, "s")
    await worker.run(outbox.close)
    await worker.run(store.close)
    assert until is None, "nothing was stored, yet the window counts as summarised"


async def test_telemetry_survives_a_full_outbox(tmp_path: Path, worker: Worker) -> None:
    store, outbox = await _full_outbox(tmp_path, worker)
    sink = SinkSettings.model_validate({"name": "s", "telemetry": "on", "telemetry_interval": "1s"})
    task = asyncio.create_task(
        telemetry_forever(store, outbox, sink, "gw", worker.run, asyncio.Event())
    )
    done, _ = await asyncio.wait([task], timeout=3.0)
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    await worker.run(outbox.close)
    await worker.run(store.close)
    assert not done, f"telemetry loop died: {task.exception()!r}"


async def test_recorder_reports_a_full_twin(tmp_path: Path, worker: Worker) -> None:
    config = TwinConfig.model_validate({"max_samples": 5000, "max_size": "256KB"})
    store = await worker.run(SignalStore.open, tmp_path / "twin.db", config)
    recorder = Recorder(store, Windows(16), worker, flush_interval=1.0)
    now = time.time()
    for step in range(2000):
        recorder.accept(
            [Sample(f"p.t{n}", now - 2000 + step, 1.0, Quality.GOOD) for n in range(50)]
        )
        await recorder.flush()
        if store.health.full:
            break
    assert store.health.full, "the twin never filled"
    stored = recorder.written
    dropped = store.health.dropped
    failing = recorder.failing
    await worker.run(store.close)
    assert failing, "the twin refuses writes but the recorder (and its metric) says all is well"
    assert dropped > 0 and stored + dropped <= 50 * (step + 1)


async def test_recorder_retries_a_batch_after_a_transient_store_error(
    tmp_path: Path, worker: Worker
) -> None:
    store, outbox = await _stages(tmp_path, worker)
    recorder = Recorder(store, Windows(16), worker, flush_interval=1.0)
    now = time.time()
    other = sqlite3.connect(tmp_path / "twin.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. a sqlite3 shell or backup tool on the file
    recorder.accept([Sample("p.t", now - 1, 1.0, Quality.GOOD)])
    await recorder.flush()
    refused = recorder.failing
    other.execute("ROLLBACK")
    other.close()
    recorder.accept([Sample("p.t", now, 2.0, Quality.GOOD)])
    await recorder.flush()
    await recorder.flush()
    history = await worker.run(store.history, "p.t", 0.0)
    await worker.run(store.close)
    await worker.run(outbox.close)
    assert refused, "the lock did not make the write fail"
    assert [s.value for s in history] == [1.0, 2.0]
