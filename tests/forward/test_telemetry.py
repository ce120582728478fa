"""Telemetry upstream: summaries from a real twin, windows aligned, backfill in order."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge_agent.forward.config import JsonlSinkConfig, OutboxConfig
from edge_agent.forward.encode import decode
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.telemetry import (
    summarize,
    telemetry_forever,
    telemetry_step,
    window_summaries,
)
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample, SignalInfo

INFO = SignalInfo("plc.temp", "plc", 1.0, asset="press1", unit="degC")


def test_summary_of_a_window() -> None:
    samples = [
        Sample("plc.temp", 10.0, 1.0, Quality.GOOD),
        Sample("plc.temp", 11.0, None, Quality.BAD),
        Sample("plc.temp", 12.0, 5.0, Quality.UNCERTAIN),
        Sample("plc.temp", 20.0, 9.0, Quality.GOOD),  # next window
    ]
    summary = summarize(INFO, samples, 0.0, 20.0)
    assert summary is not None
    assert (summary.count, summary.bad, summary.min, summary.max) == (2, 1, 1.0, 5.0)
    assert (summary.mean, summary.last, summary.unit) == (3.0, 5.0, "degC")
    assert summarize(INFO, samples, 30.0, 40.0) is None


def _store(tmp_path: Path, now: float) -> SignalStore:
    store = SignalStore.open(tmp_path / "twin.db", TwinConfig())
    store.clock = lambda: now
    store.register([INFO])
    return store


def test_windows_are_summarised_once_and_backfilled_in_order(tmp_path: Path) -> None:
    interval = 60.0
    now = math.floor(1_800_000_000 / interval) * interval + 30  # mid-window
    store = _store(tmp_path, now)
    # recorded until now + 190, then the agent stopped before summarising those windows
    store.write(
        [Sample("plc.temp", now - 600 + i, float(i), Quality.GOOD) for i in range(0, 800, 10)]
    )
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cloud"])
    assert telemetry_step(store, outbox, "cloud", "gw1", interval, now) == 1
    batch = outbox.take("cloud", 10, now=now)
    assert [(decode(r.body)["start"], decode(r.body)["end"]) for r in batch] == [
        (now - 90, now - 30)
    ]
    assert telemetry_step(store, outbox, "cloud", "gw1", interval, now) == 0  # nothing new
    outbox.ack("cloud", batch)
    outbox.close()

    later = now + 300  # the agent was down for 5 minutes: backfill from the twin
    again = Outbox.open(
        tmp_path / "outbox.db", OutboxConfig.model_validate({"historical_after": "1m"}), ["cloud"]
    )
    store.clock = lambda: later
    assert telemetry_step(store, again, "cloud", "gw1", interval, later) == 5
    payloads = [decode(r.body) for r in again.take("cloud", 10, now=later)]
    # in order, contiguous; the last window (no samples: the agent was down) is skipped
    assert [p["end"] for p in payloads] == [now + 30, now + 90, now + 150, now + 210]
    assert all(p["historical"] for p in payloads)
    assert [p["count"] for p in payloads] == [6, 6, 6, 5]
    store.close()


async def test_telemetry_forever_queues_and_wakes_the_sink(tmp_path: Path) -> None:
    now = time.time()
    store = _store(tmp_path, now)
    store.write([Sample("plc.temp", now - 5 + i * 0.5, 20.0 + i, Quality.GOOD) for i in range(10)])
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cloud"])
    sink = JsonlSinkConfig(type="jsonl", name="cloud", path="x", telemetry="on")
    sink = sink.model_copy(update={"telemetry_interval": 1.0})
    wake = asyncio.Event()
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()

    async def run(fn: Any, *args: Any) -> Any:
        return await loop.run_in_executor(executor, fn, *args)

    task = asyncio.create_task(telemetry_forever(store, outbox, sink, "gw1", run, wake))
    try:
        async with asyncio.timeout(10):
            await wake.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    payloads = [decode(r.body) for r in outbox.take("cloud", 10)]
    assert payloads and all(p["type"] == "telemetry" for p in payloads)
    assert payloads[0]["end"] - payloads[0]["start"] == 1.0
    assert payloads[0]["signal"] == "plc.temp" and payloads[0]["count"] >= 1
    executor.shutdown()
    store.close()


def test_minute_windows_from_rollups_equal_the_raw_summaries(tmp_path: Path) -> None:
    now = math.floor(1_800_000_000 / 60) * 60 + 30
    store = _store(tmp_path, now)
    other = SignalInfo("plc.flow", "plc", 0.5, asset="press1", unit="l/min")
    store.register([other])
    samples = []
    for i in range(1200):  # 10 minutes at 0.5 s, BAD every 13th, UNCERTAIN every 7th
        ts, value = now - 600 + i * 0.5, float((i * 37) % 101) - 50.0
        quality = Quality.UNCERTAIN if i % 7 == 0 else Quality.GOOD
        samples.append(
            Sample.bad("plc.temp", ts) if i % 13 == 0 else Sample("plc.temp", ts, value, quality)
        )
        samples.append(Sample("plc.flow", ts, value * 2, Quality.GOOD))
    for chunk in range(0, len(samples), 40):  # flushes of 20 s, the newest minute still open
        store.write(samples[chunk : chunk + 40])
    for start in (now - 570, now - 390, now - 90):
        for end in (start + 60, start + 120):
            raw = [
                summarize(info, store.history(info.signal, start, end), start, end)
                for info in store.signals()
            ]
            assert window_summaries(store, start, end) == [s for s in raw if s is not None]
    store.close()
