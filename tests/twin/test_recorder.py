"""The recorder flushes on its interval, or as soon as a full batch waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.recorder import FLUSH_BATCH, MAX_WAITING_SAMPLES, Recorder, joined
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample
from edge_agent.worker import Worker
from tests.twin.conftest import T0


async def test_a_full_batch_is_flushed_before_the_interval(db: Path) -> None:
    store = SignalStore.open(db, TwinConfig())
    worker = Worker()
    recorder = Recorder(store, Windows(16, signals=()), worker, flush_interval=3600.0)
    task = asyncio.create_task(recorder.record_forever())
    try:
        await asyncio.sleep(0)
        recorder.accept([Sample("plc.temp", T0, 1.0, Quality.GOOD)] * (FLUSH_BATCH - 1))
        await asyncio.sleep(0.2)
        assert recorder.written == 0  # under a batch: it waits for the interval
        recorder.accept([Sample("plc.temp", T0 + 1, 2.0, Quality.GOOD)])
        async with asyncio.timeout(30):  # an hour before the interval would flush
            while recorder.written < FLUSH_BATCH:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        worker.close()
    assert store.latest()["plc.temp"].value == 2.0
    store.close()


def test_joined_keeps_every_sample_in_arrival_order() -> None:
    chunks = [
        [Sample(f"p.s{i}", T0 + k, float(k), Quality.GOOD) for i in range(k)] for k in range(6)
    ]
    assert joined(chunks) == [s for chunk in chunks for s in chunk]
    assert joined([chunks[3]]) is chunks[3]  # one list: taken as it is
    assert joined([]) == []


async def test_the_poll_loops_lists_reach_the_twin_in_order_across_a_restart(db: Path) -> None:
    def tick(k: int) -> list[Sample]:
        return [Sample(f"p.s{i}", T0 + k / 10, float(k * 100 + i), Quality.GOOD) for i in range(7)]

    for start in (0, 25):  # a stop flushes what waits; the second run goes on in the same file
        store = SignalStore.open(db, TwinConfig())
        worker = Worker()
        recorder = Recorder(store, Windows(64), worker, flush_interval=0.05)
        task = asyncio.create_task(recorder.record_forever())
        for k in range(start, start + 25):
            recorder.accept(tick(k))
            if k % 4 == 0:
                await asyncio.sleep(0.06)  # a flush now and then, several lists in each
        assert recorder.waiting == sum(map(len, recorder.pending))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        worker.close()
        assert recorder.written == 25 * 7 and recorder.waiting == 0
        assert recorder.windows.series("p.s3", T0)[1].tolist() == [
            k * 100 + 3 for k in range(start, start + 25)
        ]
        store.close()
    store = SignalStore.open(db, TwinConfig())
    assert [s.value for s in store.history("p.s3", T0)] == [k * 100 + 3 for k in range(50)]
    store.close()


async def test_samples_no_flush_takes_are_bounded_dropped_oldest_and_counted(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A recorder that is not flushing (stopped, or its worker stuck) must not grow forever."""
    store = SignalStore.open(db, TwinConfig())
    worker = Worker()
    recorder = Recorder(store, Windows(16, signals=()), worker, flush_interval=3600.0)
    tick = 10_000
    for k in range(3 * MAX_WAITING_SAMPLES // tick):  # nobody runs record_forever
        recorder.accept([Sample("plc.temp", T0 + k, float(k), Quality.GOOD)] * tick)
    assert MAX_WAITING_SAMPLES - tick < recorder.waiting <= MAX_WAITING_SAMPLES
    assert recorder.dropped + recorder.waiting == 3 * MAX_WAITING_SAMPLES
    assert recorder.pending[-1][0].value == float(
        3 * MAX_WAITING_SAMPLES // tick - 1
    )  # newest kept
    assert caplog.text.count("the oldest are dropped") == 1  # once, not per tick
    kept = recorder.waiting
    await recorder.flush()
    worker.close()
    assert recorder.written == kept  # what was kept reaches the twin
    assert caplog.text.count("flushing again") == 1
    assert next(r.levelno for r in caplog.records if "dropped" in r.message) == logging.ERROR
    store.close()


def test_a_backlog_of_small_lists_is_dropped_at_once_oldest_first(db: Path) -> None:
    """One large list behind many small ones: as many of the oldest go as make room."""
    store = SignalStore.open(db, TwinConfig())
    recorder = Recorder(store, Windows(16, signals=()), Worker(), flush_interval=3600.0)
    small = [[Sample("plc.temp", T0 + k, float(k), Quality.GOOD)] for k in range(FLUSH_BATCH - 1)]
    for chunk in small:
        recorder.accept(chunk)
    recorder.accept([Sample("plc.temp", T0 + FLUSH_BATCH, -1.0, Quality.GOOD)] * 190_000)
    over = FLUSH_BATCH - 1 + 190_000 - MAX_WAITING_SAMPLES
    assert recorder.dropped == over and recorder.waiting == MAX_WAITING_SAMPLES
    assert recorder.pending[0] is small[over]  # the oldest kept is the next in arrival order
    recorder.worker.close()
    store.close()
