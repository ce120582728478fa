"""The serial source against a real line: a socat pty pair, the test playing the sensor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.errors import SourceError
from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.parse import with_nmea_checksum
from edge_agent.sources.serial.source import SerialSource
from edge_agent.types import Quality
from tests.sources.serial.pty_pair import VIB, Device, PtyPair, collect, frames_seen, make, values


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path) as running:
        yield running


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


async def test_garbage_gives_bad_samples_and_counts(
    pair: PtyPair, caplog: pytest.LogCaptureFixture
) -> None:
    source = make(pair)
    caplog.set_level(logging.INFO, logger="edge_agent.sources.serial.decode")
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
    # Three bad frames in a row, then a good one: one warning, one recovery.
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "readable again after 3 bad frames" in caplog.records[1].getMessage()


async def test_missing_port_is_a_source_error(tmp_path: Path) -> None:
    config = SerialSourceConfig.model_validate(
        {"type": "serial", "name": "x", "port": str(tmp_path / "nope"), "parse": {"pattern": VIB}}
    )
    with pytest.raises(SourceError, match="cannot open"):
        async with SerialSource(config):
            pass


@pytest.mark.parametrize("pull", ["stop", "kill"])
async def test_port_vanishes_and_returns(pair: PtyPair, pull: str) -> None:
    source = make(pair)
    async with source:
        getattr(pair, pull)()  # kill -9 leaves a dangling link, like a stale device node
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


async def test_port_vanishing_during_a_request_is_a_source_error(pair: PtyPair) -> None:
    source = make(pair, request="MEAS?\n", response_timeout="10s")
    with Device(pair.device) as device:
        async with source:
            task = asyncio.create_task(source.read())
            await device.read_until(b"\n")
            pair.stop()
            with pytest.raises(SourceError, match="lost"):
                await task


async def test_a_port_is_read_by_one_source_only(pair: PtyPair) -> None:
    async with make(pair):
        with pytest.raises(SourceError, match="cannot open"):
            async with make(pair):
                pass


async def test_silent_stream_is_a_source_error_when_configured(pair: PtyPair) -> None:
    source = make(pair, lost_after="20ms")
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=1,peak=2,temp=3\n")
            await collect(source, 3)
            with pytest.raises(SourceError, match="nothing received"):
                await collect(source, 1)


async def test_a_reopened_port_joins_the_stream_mid_line(pair: PtyPair) -> None:
    source = make(pair)
    with Device(pair.device) as device:
        async with source:
            device.write(b"rms=1,peak=2,temp=3\nVIB,rms=4,peak=5,temp=6\n")  # tail of a line
            got = await collect(source, 3)
    assert values(got) == {"vib1.rms": 4.0, "vib1.peak": 5.0, "vib1.temp": 6.0}
    assert source.counters["partial"] == 1


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


def config(**keys: object) -> SerialSourceConfig:
    raw = {"type": "serial", "name": "s", "port": "/dev/ttyUSB0", **keys}
    return SerialSourceConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"parse": {"type": "csv"}}, "needs a signals list"),
        ({"parse": {"type": "kv"}}, "needs a signals list"),
        ({"parse": {"type": "csv"}, "signals": [{"name": "a"}]}, "must be a position"),
        ({"parse": {"pattern": VIB}, "signals": [{"name": "x"}]}, "no group 'x'"),
        ({"parse": {"pattern": "(a)"}}, "at least one named group"),
        ({"parse": {"pattern": "(?P<a>"}}, "not a valid regular expression"),
        ({"parse": {"type": "xml"}}, "does not match any of the expected tags"),
        ({"parse": {"pattern": VIB}, "stop_bits": 3}, "stop_bits must be 1, 1.5 or 2"),
        ({"parse": {"pattern": VIB}, "data_bits": 9}, "data_bits"),
        ({"parse": {"pattern": VIB}, "encoding": "klingon"}, "unknown"),
        ({"parse": {"pattern": VIB}, "request": "\u20ac"}, "request must be bytes"),
        ({"parse": {"pattern": VIB}, "framing": {"delimiter": ""}}, "at least 1 character"),
        (
            {"parse": {"type": "kv"}, "signals": [{"name": "a"}, {"name": "A"}]},
            "names must be unique",
        ),
    ],
)
def test_config_errors_are_clear(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**keys)


def test_config_defaults() -> None:
    cfg = config(parse={"pattern": VIB})
    assert cfg.framing.type == "delimiter"
    assert [signal.name for signal in cfg.signal_configs()] == ["peak", "rms", "temp"]


async def test_a_full_buffer_drops_the_oldest_and_says_so(
    pair: PtyPair, caplog: pytest.LogCaptureFixture
) -> None:
    source = make(pair, max_pending=3)
    with Device(pair.device) as device:
        async with source:
            device.write(b"VIB,rms=1,peak=1,temp=1\nVIB,rms=2,peak=2,temp=2\n")
            device.write(b"VIB,rms=3,peak=3,temp=3\n")
            await frames_seen(source, 3)
            with caplog.at_level(logging.INFO, logger="edge_agent.sources.serial.source"):
                got = await source.read()
                device.write(b"VIB,rms=4,peak=4,temp=4\n")
                got += await collect(source, 3)
    assert [s.value for s in got] == [3.0] * 3 + [4.0] * 3
    assert source.counters["dropped"] == 6
    assert ["dropping the oldest" in m for m in caplog.messages] == [True, False]
    assert "keep up again, 6 samples dropped" in caplog.messages[1]


async def test_on_open_is_sent_at_every_open(pair: PtyPair) -> None:
    source = make(pair, on_open="START\r\n")
    with Device(pair.device) as device:
        for _ in range(2):
            async with source:
                assert await device.read_until(b"\r\n") == b"START\r\n"
                device.write(b"VIB,rms=1,peak=2,temp=3\n")
                assert values(await collect(source, 3))["vib1.rms"] == 1.0
