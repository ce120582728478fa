"""The recorder flushes on its interval, or as soon as a full batch waits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.recorder import FLUSH_BATCH, Recorder
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
