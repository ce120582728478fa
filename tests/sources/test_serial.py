"""The serial source against a real line: a socat pty pair, the test playing the sensor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.errors import SourceError
from edge_agent.sources.serial import SerialSource, SerialSourceConfig
from edge_agent.sources.serial_parse import with_nmea_checksum
from edge_agent.types import Quality, Sample
from tests.sources.pty_pair import Device, PtyPair

WAIT = 10.0  # seconds before a test gives up waiting for the line
VIB = r"^VIB,rms=(?P<rms>[^,]+),peak=(?P<peak>[^,]+),temp=(?P<temp>[^,]+)$"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path) as running:
        yield running


def make(pair: PtyPair, **keys: Any) -> SerialSource:
    raw = {"type": "serial", "name": "vib1", "port": str(pair.port), **keys}
    raw.setdefault("parse", {"pattern": VIB})
    return SerialSource(SerialSourceConfig.model_validate(raw))


async def collect(source: SerialSource, count: int) -> list[Sample]:
    """Read until at least ``count`` samples came (the line is asynchronous)."""
    got: list[Sample] = []
    async with asyncio.timeout(WAIT):
        while len(got) < count:
            got += await source.read()
            await asyncio.sleep(0.005)
    return got


async def frames_seen(source: SerialSource, count: int) -> None:
    """Wait until the source has decoded ``count`` frames."""
    async with asyncio.timeout(WAIT):
        # The counters are plain numbers with no event to await: poll them.
        while source.counters["frames"] < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def values(samples: list[Sample]) -> dict[str, float | None]:
    return {sample.signal: sample.value for sample in samples}


async def test_vib_lines_by_regex(pair: PtyPair) -> None:
    source = make(
        pair,
        signals=[
            {"name": "rms", "unit": "mm/s"},
            {"name": "peak", "scale": 10.0},
            {"name": "temp", "offset": 273.15, "unit": "K"},
        ],
    )
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=0.31,peak=1.20,temp=41.8\n")
            got = await collect(source, 3)
    assert values(got) == pytest.approx(
        {"vib1.rms": 0.31, "vib1.peak": 12.0, "vib1.temp": 41.8 + 273.15}
    )
    assert {sample.quality for sample in got} == {Quality.GOOD}
    assert [info.unit for info in source.signals()] == ["mm/s", "", "K"]


async def test_every_line_since_last_read_is_returned(pair: PtyPair) -> None:
    source = make(pair)  # signals derived from the named groups
    with Device(pair.device) as device:
        async with source:
            for rms in range(5):
                device.write(f"VIB,rms={rms},peak=1,temp=2\r\n".encode())
            got = await collect(source, 15)
    assert [sample.value for sample in got if sample.signal == "vib1.rms"] == [0, 1, 2, 3, 4]
    assert source.counters["good"] == 5


async def test_keep_latest_returns_one_sample_per_signal(pair: PtyPair) -> None:
    source = make(pair, keep="latest")
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=1,peak=1,temp=1\nVIB,rms=2,peak=2,temp=2\n")
            await frames_seen(source, 2)
            got = await source.read()
    assert values(got) == {"vib1.rms": 2.0, "vib1.peak": 2.0, "vib1.temp": 2.0}
    assert len(got) == 3


async def test_garbage_gives_bad_samples_and_counts(pair: PtyPair) -> None:
    source = make(pair)
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=1,peak=2,temp=3\n")
            await collect(source, 3)
            device.write(b"#@!\n\xff\xfe\nVIB,rms=zz,peak=2,temp=3\nVIB,rms=4,peak=5,temp=6\n")
            got = await collect(source, 12)
    assert [s.quality for s in got[:6]] == [Quality.BAD] * 6
    assert values(got[6:9]) == {"vib1.rms": None, "vib1.peak": 2.0, "vib1.temp": 3.0}
    assert values(got[9:]) == {"vib1.rms": 4.0, "vib1.peak": 5.0, "vib1.temp": 6.0}
    assert source.counters["no_match"] == 1
    assert source.counters["undecodable"] == 1
    assert source.counters["bad_value"] == 1


async def test_missing_port_is_a_source_error(tmp_path: Path) -> None:
    config = SerialSourceConfig.model_validate(
        {"type": "serial", "name": "x", "port": str(tmp_path / "nope"), "parse": {"pattern": VIB}}
    )
    with pytest.raises(SourceError, match="cannot open"):
        async with SerialSource(config):
            pass


async def test_port_vanishes_and_returns(pair: PtyPair) -> None:
    source = make(pair)
    async with source:
        pair.stop()
        with pytest.raises(SourceError, match="lost"):
            await collect(source, 1)
    with pytest.raises(SourceError, match="cannot open"):
        await source.__aenter__()
    pair.start()
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=7,peak=8,temp=9\n")
            got = await collect(source, 3)
    assert values(got)["vib1.rms"] == 7.0


async def test_request_is_sent_and_answer_awaited(pair: PtyPair) -> None:
    source = make(
        pair, request="MEAS?\r\n", checksum="nmea", parse={"pattern": VIB.replace("^", r"^\$")}
    )
    with Device(pair.device) as device:
        async with source:
            task = asyncio.create_task(source.read())
            assert await device.read_until(b"\r\n") == b"MEAS?\r\n"
            device.write(with_nmea_checksum(b"$VIB,rms=1.5,peak=2,temp=3") + b"\r\n")
            got = await task
    assert values(got)["vib1.rms"] == 1.5


async def test_silent_device_is_a_source_error(pair: PtyPair) -> None:
    source = make(pair, request="MEAS?\n", response_timeout="50ms")
    async with source:
        with pytest.raises(SourceError, match="no answer"):
            await source.read()
