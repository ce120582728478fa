"""Serial garbage at full line rate into the twin: valid lines all kept, GOOD history kept.

Line noise turns every garbled frame into one BAD sample per signal. Before the
twin kept BAD runs compactly, a few minutes of noise overwrote each signal's
whole ring with BAD rows; now a run takes at most two slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.sources.serial.source import SerialSource
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality
from tests.sources.serial.pty_pair import WAIT, Device, PtyPair, make

NOISE_LINES = 400  # garbled frames between two valid lines
VALID = 12
RING = 64


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path) as running:
        yield running


async def test_noise_does_not_wipe_good_history(pair: PtyPair, tmp_path: Path) -> None:
    store = SignalStore.open(tmp_path / "twin.db", TwinConfig(max_samples=RING))
    source = make(pair)
    noise = b"#@!\n\xff\xfe\n" * (NOISE_LINES // 2)
    with Device(pair.device) as device:
        async with source:
            for rms in range(VALID):
                device.write(noise)  # as fast as the pty takes it
                device.write(f"VIB,rms={rms},peak=1,temp=2\n".encode())
                await _drain(source, store)
            async with asyncio.timeout(WAIT):
                while source.counters["good"] < VALID:
                    await _drain(source, store)
            await _drain(source, store)  # the samples of the last frame decoded
    kept = store.history("vib1.rms", 0.0)
    bad_total = sum(r.bad for r in store.rollups("vib1.rms", 0.0))
    store.close()
    assert [s.value for s in kept if s.quality == Quality.GOOD] == list(range(VALID))
    assert len(kept) <= 3 * VALID  # each run of noise: its first and newest sample
    garbled = source.counters["no_match"] + source.counters["undecodable"]
    assert garbled > NOISE_LINES * (VALID - 1)
    assert bad_total == garbled  # the rollups still count every garbled frame


async def _drain(source: SerialSource, store: SignalStore) -> None:
    store.write(await source.read())
    await asyncio.sleep(0.001)
