"""The serial source under the agent's poll loop: the cable pulled and plugged back in."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge_agent.sources.poll import PollStats, Source, poll_forever
from edge_agent.types import Sample
from tests.sources.serial.pty_pair import WAIT, Device, PtyPair, make


async def send_until_seen(pair: PtyPair, got: list[Sample], value: float) -> None:
    """Send a VIB line again and again until the poll loop has emitted it.

    Repeated because the source may not be open yet (the loop is backing off).
    """
    line = f"VIB,rms={value},peak=0,temp=0\n".encode()
    with Device(pair.device) as device:
        async with asyncio.timeout(WAIT):
            while all(sample.value != value for sample in got):
                device.write(line)
                await asyncio.sleep(0.05)


async def test_poll_loop_reopens_the_port_when_it_returns(tmp_path: Path) -> None:
    got: list[Sample] = []
    stats = PollStats()
    with PtyPair(tmp_path) as pair:
        source: Source = make(pair, interval="20ms")
        task = asyncio.create_task(poll_forever(source, got.extend, stats, cap=0.5))
        try:
            await send_until_seen(pair, got, 1.5)
            pair.stop()  # the USB adapter is pulled
            async with asyncio.timeout(WAIT):
                while stats.outages == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            pair.start()  # and plugged back in
            await send_until_seen(pair, got, 2.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert stats.outages == 1
    values = {s.value for s in got if s.signal == "vib1.rms"}
    assert values == {1.5, 2.5, None}  # None: marked BAD while the port was gone
