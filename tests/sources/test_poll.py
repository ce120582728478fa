"""The generic poll loop: drift-free ticks, skipped overruns, reconnect logged once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Self

import pytest

from edge_agent.errors import SourceError
from edge_agent.sources.poll import PollStats, _DownMarks, on_the_grid, poll_forever
from edge_agent.types import BAD_REPEAT, Quality, Sample, SignalInfo


@dataclass(frozen=True)
class _Config:
    name: str
    interval: float


class ScriptedSource:
    """A source whose link fails on the connects and reads listed in ``fail``."""

    def __init__(
        self,
        interval: float,
        fail_connects: int = 0,
        fail_read: int = -1,
        read_delay: float = 0.0,
        name: str = "dev",
    ) -> None:
        self.config = _Config(name, interval)
        self.read_at: list[float] = []
        self.fail_connects = fail_connects
        self.fail_read = fail_read
        self.read_delay = read_delay
        self.connects = 0
        self.reads = 0

    def signals(self) -> list[SignalInfo]:
        return [SignalInfo("dev.x", "dev", self.config.interval)]

    async def __aenter__(self) -> Self:
        self.connects += 1
        if self.connects <= self.fail_connects:
            raise SourceError("refused")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def read(self) -> list[Sample]:
        self.reads += 1
        if self.reads == self.fail_read:
            raise SourceError("link lost")
        self.read_at.append(time.time())
        await asyncio.sleep(self.read_delay)
        return [Sample("dev.x", 0.0, float(self.reads), Quality.GOOD)]


async def _run_for(seconds: float, source: ScriptedSource, stats: PollStats) -> list[Sample]:
    got: list[Sample] = []
    task = asyncio.create_task(poll_forever(source, got.extend, stats, cap=0.05))
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return got


async def test_polls_every_interval() -> None:
    stats = PollStats()
    source = ScriptedSource(0.05)
    got = await _run_for(0.5, source, stats)
    values = [s for s in got if s.signal == "dev.x"]
    assert len(values) >= 2 and stats.reads == source.reads == len(values)
    assert [s.value for s in got if s.signal == "link.dev"] == [1.0] * len(values)
    assert source.connects == 1


async def test_a_lost_link_marks_its_signals_bad_at_once_then_every_bad_repeat() -> None:
    stats = PollStats()
    source = ScriptedSource(0.05, fail_connects=1000)
    got = await _run_for(0.5, source, stats)
    link = [s for s in got if s.signal == "link.dev"]
    assert len(link) >= 3 and {s.value for s in link} == {0.0}
    bad = [s for s in got if s.signal == "dev.x"]
    assert all(s.quality is Quality.BAD for s in bad)
    assert bad[0].ts == link[0].ts  # at the first tick of the outage
    # then once per BAD_REPEAT slot of the clock, not every interval (nor every reconnect)
    assert [s.ts for s in bad] == [s.ts for s in _first_in_each_slot(link)]


def _first_in_each_slot(samples: list[Sample]) -> list[Sample]:
    slots: dict[int, Sample] = {}
    for sample in samples:
        slots.setdefault(math.floor(sample.ts / BAD_REPEAT), sample)
    return list(slots.values())


def test_down_marks_put_one_bad_per_signal_in_every_slot_of_a_long_outage() -> None:
    source = ScriptedSource(0.1)
    marks = _DownMarks(source)
    start = 1_800_000_000.0 + 12.3
    ticks = [marks.due(start + 0.1 * i) for i in range(3000)]  # 5 minutes at 100 ms
    bad = [s for batch in ticks for s in batch if s.signal == "dev.x"]
    assert sum(len(batch) for batch in ticks) == 3000 + len(bad)  # a link sample every tick
    minutes = {math.floor(s.ts / 60) for s in bad}
    assert minutes == {math.floor((start + 0.1 * i) / 60) for i in range(3000)}
    assert len(bad) == len({math.floor(s.ts / BAD_REPEAT) for s in bad}) == 11
    marks.slot = None  # the link came back: the next outage is marked at once
    assert [s.signal for s in marks.due(start + 300.05)] == ["dev.x", "link.dev"]


async def test_overrun_skips_ticks_instead_of_queueing() -> None:
    stats = PollStats()
    source = ScriptedSource(0.02, read_delay=0.07)
    await _run_for(0.5, source, stats)
    assert stats.skipped_ticks >= source.reads - 1 >= 1


async def test_reconnects_and_logs_each_transition_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stats = PollStats()
    source = ScriptedSource(0.02, fail_connects=4)
    got = await _run_for(0.6, source, stats)
    assert got, "no samples after the device came back"
    assert caplog.text.count("connection lost") == 1
    assert caplog.text.count("reconnected after") == 1
    assert stats.outages == 1


async def test_lost_link_mid_poll_reconnects() -> None:
    stats = PollStats()
    source = ScriptedSource(0.02, fail_read=3)
    await _run_for(0.4, source, stats)
    assert source.connects == 2 and stats.outages == 1


class SwallowingSource(ScriptedSource):
    """A read that eats a cancel arriving with its reply, as 3.11's wait_for can."""

    swallowed = False

    async def read(self) -> list[Sample]:
        if self.swallowed:  # only once, so a failing test still ends
            await asyncio.sleep(0.05)
        else:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)
                return [Sample("dev.x", 0.0, 1.0, Quality.GOOD)]
            self.swallowed = True
        return [Sample("dev.x", 0.0, 1.0, Quality.GOOD)]


async def test_a_cancel_swallowed_by_a_library_still_stops_the_loop() -> None:
    source = SwallowingSource(0.01)
    task = asyncio.create_task(poll_forever(source, lambda _: None, PollStats()))
    await asyncio.sleep(0.2)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    task.cancel()  # a second cancel is not swallowed: the test ends either way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert done, "the poll loop ran on after its cancel was swallowed"


class SwallowingConnect(ScriptedSource):
    """A connect that eats a cancel arriving with its failure, then fails (no server)."""

    swallowing: asyncio.Event  # set by the test, on its loop

    async def __aenter__(self) -> Self:
        self.connects += 1
        if self.connects == 2:  # only once, so a failing test still ends
            self.swallowing.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)
        raise SourceError("connection refused")


async def test_a_cancel_swallowed_by_a_failing_connect_still_stops_the_loop() -> None:
    """On 3.11 pymodbus' connect can eat the cancel; the loop then backed off forever.

    Found by a bench run: the agent did not stop on SIGTERM, its down-marking task
    filled a recorder that had stopped (10,000 signals, 8 MB/s), until SIGKILL.
    """
    source = SwallowingConnect(0.01)
    task = asyncio.create_task(poll_forever(source, lambda _: None, PollStats(), cap=0.02))
    source.swallowing = asyncio.Event()
    await source.swallowing.wait()
    task.cancel()  # lands in the second connect, which swallows it
    done, _ = await asyncio.wait([task], timeout=2.0)
    task.cancel()  # a second cancel is not swallowed: the test ends either way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert done, "the poll loop backed off and reconnected after its cancel was swallowed"


@dataclass(frozen=True)
class _ScriptedConfig:
    name: str
    interval: float


class AcceptsThenDrops:
    """A Modbus gateway at its connection limit: TCP connect works, every request is reset."""

    def __init__(self) -> None:
        self.config = _ScriptedConfig("gw", 0.01)
        self.connects = 0

    def signals(self) -> list[SignalInfo]:
        return [SignalInfo("gw.x", "gw", 0.01)]

    async def __aenter__(self) -> Self:
        self.connects += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def read(self) -> list[Sample]:
        raise SourceError("connection reset by peer")


async def test_flapping_link_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sources.poll")
    source = AcceptsThenDrops()
    task = asyncio.create_task(poll_forever(source, lambda s: None, PollStats(), cap=0.02))
    while source.connects < 6:  # noqa: ASYNC110 - a plain counter, no event to await
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("connection lost" in m for m in messages) == 1, messages
    assert not any("reconnected" in m for m in messages), messages


async def test_modbus_peer_that_resets_every_request(caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.registry import build_source
    from edge_agent.sources.modbus.config import ModbusSourceConfig

    caplog.set_level(logging.INFO, logger="edge_agent.sources.poll")
    accepted = 0

    async def accept_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.read(1)  # the first request arrives: reset the connection
        writer.transport.abort()

    server = await asyncio.start_server(accept_then_reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ModbusSourceConfig.model_validate(
        {"type": "modbus", "name": "m", "url": f"tcp://127.0.0.1:{port}", "timeout": "500ms",
         "backoff": "100ms", "backoff_max": "200ms", "registers": [{"name": "x", "address": 0}]}
    )  # fmt: skip
    task = asyncio.create_task(poll_forever(build_source(config), lambda s: None, PollStats()))
    deadline = time.monotonic() + 30
    while accepted < 8:  # eight connections, each reset at its first request
        assert time.monotonic() < deadline and not task.done(), accepted
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    server.close()
    await server.wait_closed()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("connection lost" in m for m in messages) == 1, messages


def test_the_grid_is_the_next_whole_multiple_of_the_interval_on_the_wall_clock() -> None:
    assert on_the_grid(0.5, now=100.0, wall=1000.2) == pytest.approx(100.3)
    assert on_the_grid(1.0, now=7.0, wall=59.75) == pytest.approx(7.25)
    assert on_the_grid(60.0, now=0.0, wall=3600.0) == pytest.approx(60.0)  # on it: the next one


async def test_sources_started_apart_read_on_the_same_ticks() -> None:
    """The first read at once, then every tick on the clock's grid, for every source."""
    interval = 0.4
    first, second = ScriptedSource(interval, name="a"), ScriptedSource(interval, name="b")
    tasks = [asyncio.create_task(poll_forever(first, lambda _: None, PollStats(), cap=0.05))]
    await asyncio.sleep(interval / 2)  # the second starts half a tick later
    tasks.append(asyncio.create_task(poll_forever(second, lambda _: None, PollStats(), cap=0.05)))
    await asyncio.sleep(5 * interval)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    later = first.read_at[1:] + second.read_at[1:]
    assert len(first.read_at) >= 4 and len(second.read_at) >= 4
    # a phase near 0 or near the interval both mean "on the grid" (a late or an early wake)
    phases = [min(t % interval, interval - t % interval) for t in later]
    assert max(phases) < interval / 4, phases
    assert second.read_at[0] - first.read_at[0] >= interval / 4  # they did start apart
