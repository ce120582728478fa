"""Checksum, parsers and the frame decoder alone, without a port."""

from __future__ import annotations

import contextlib
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.serial.config import SerialSignalConfig
from edge_agent.sources.serial.decode import FrameDecoder
from edge_agent.sources.serial.framing import Frame
from edge_agent.sources.serial.parse import (
    CsvParser,
    FrameError,
    KeyValueParser,
    Parser,
    RegexParser,
    nmea_checksum,
    strip_nmea_checksum,
    with_nmea_checksum,
)
from edge_agent.types import Quality, Sample

printable = st.binary(max_size=60).map(lambda b: bytes(c for c in b if 32 <= c < 127 and c != 42))


def test_nmea_checksum_of_a_real_sentence() -> None:
    # GPS receivers send exactly this sentence; *47 is its published checksum.
    sentence = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
    assert strip_nmea_checksum(sentence) == sentence[:-3]
    assert nmea_checksum(sentence[1:-3]) == 0x47


@given(printable, st.sampled_from([b"", b"$", b"!"]))
def test_checksum_round_trip(body: bytes, lead: bytes) -> None:
    assert strip_nmea_checksum(with_nmea_checksum(lead + body) + b"\r") == lead + body


@given(printable.filter(bool), st.data())
def test_any_changed_byte_fails_the_checksum(body: bytes, data: st.DataObject) -> None:
    framed = bytearray(with_nmea_checksum(body))
    at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    framed[at] ^= data.draw(st.integers(min_value=1, max_value=0x7F).filter(lambda x: x != 42))
    with pytest.raises(FrameError) as caught:
        strip_nmea_checksum(bytes(framed))
    assert caught.value.reason == "checksum"


@pytest.mark.parametrize("frame", [b"VIB,1,2", b"VIB*4", b"VIB*zz", b"VIB*123"])
def test_missing_or_malformed_checksum_is_an_error(frame: bytes) -> None:
    with pytest.raises(FrameError, match="checksum"):
        strip_nmea_checksum(frame)


def test_regex_parser_leaves_out_groups_that_did_not_match() -> None:
    parser = RegexParser(re.compile(r"T=(?P<t>[\d.]+)(?:,H=(?P<h>[\d.]+))?"))
    assert parser.fields("T=21.5,H=40") == {"t": "21.5", "h": "40"}
    assert parser.fields("T=21.5") == {"t": "21.5"}
    with pytest.raises(FrameError, match="no_match"):
        parser.fields("hello")


def test_csv_parser_by_position() -> None:
    parser = CsvParser(";", needed=3)
    assert parser.fields("A; 1.5 ;2") == {"0": "A", "1": "1.5", "2": "2"}
    with pytest.raises(FrameError, match="short"):
        parser.fields("A;1")


def test_kv_parser_ignores_tags_and_unknown_keys() -> None:
    parser = KeyValueParser(",", "=", frozenset({"rms", "peak"}))
    assert parser.fields("VIB,rms=0.31, peak = 1.2,x=9") == {"rms": "0.31", "peak": "1.2"}
    with pytest.raises(FrameError, match="no_match"):
        parser.fields("STATUS,ok")


def test_kv_parser_sees_two_lines_run_together() -> None:
    parser = KeyValueParser(",", "=", frozenset({"rms", "peak"}))
    with pytest.raises(FrameError, match="merged"):
        parser.fields("VIB,rms=0.31,peVIB,rms=0.32,peak=1.2")


@given(st.text(max_size=80))
def test_parsers_raise_only_frame_errors(text: str) -> None:
    parsers: list[Parser] = [
        RegexParser(re.compile(r"^(?P<a>\d+),(?P<b>\d+)$")),
        CsvParser(",", needed=2),
        KeyValueParser(",", "=", frozenset({"a"})),
    ]
    for parser in parsers:
        with contextlib.suppress(FrameError):
            assert isinstance(parser.fields(text), dict)


def decoder(checksum: bool = False) -> FrameDecoder:
    signals = [
        SerialSignalConfig(name="rms", scale=2.0),
        SerialSignalConfig(name="Temp", field="t", offset=-1.0),
    ]
    parser = KeyValueParser(",", "=", frozenset({"rms", "t"}))
    return FrameDecoder("Vib1", parser, signals, checksum, "ascii")


def test_decoder_scales_and_names_signals() -> None:
    got = decoder().decode(Frame(b"VIB,rms=1.5,t=20\r"), ts=5.0)
    assert got == [
        Sample("vib1.rms", 5.0, 3.0, Quality.GOOD),
        Sample("vib1.temp", 5.0, 19.0, Quality.GOOD),
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (Frame(b"rms=1", complete=False), "overflow"),
        (Frame(b"rms=\xff"), "undecodable"),
        (Frame(b"noise"), "no_match"),
    ],
)
def test_unreadable_frame_makes_every_signal_bad(frame: Frame, reason: str) -> None:
    dec = decoder()
    assert dec.decode(frame, ts=1.0) == [Sample.bad("vib1.rms", 1.0), Sample.bad("vib1.temp", 1.0)]
    assert dec.counters[reason] == 1


def test_checksum_failure_makes_every_signal_bad() -> None:
    dec = decoder(checksum=True)
    good = with_nmea_checksum(b"$VIB,rms=1,t=2")
    assert [s.quality for s in dec.decode(Frame(good), 1.0)] == [Quality.GOOD] * 2
    bad = good.replace(b"rms=1", b"rms=7")
    assert [s.quality for s in dec.decode(Frame(bad), 2.0)] == [Quality.BAD] * 2
    assert dec.counters["checksum"] == 1


@pytest.mark.parametrize("raw", [b"abc", b"nan", b"inf", b""])
def test_unreadable_value_makes_only_its_signal_bad(raw: bytes) -> None:
    dec = decoder()
    got = dec.decode(Frame(b"rms=" + raw + b",t=3"), ts=1.0)
    assert got == [Sample.bad("vib1.rms", 1.0), Sample("vib1.temp", 1.0, 2.0, Quality.GOOD)]
    assert dec.counters["bad_value"] == 1


def test_first_frame_after_open_may_be_a_partial_line() -> None:
    dec = decoder()
    dec.expect_partial()
    assert dec.decode(Frame(b"1.5"), ts=1.0) == []  # tail of a line sent before we opened
    assert dec.counters["partial"] == 1
    assert dec.decode(Frame(b"1.5"), ts=2.0) != []  # only the first frame is forgiven


def test_a_readable_first_frame_is_kept() -> None:
    dec = decoder()
    dec.expect_partial()
    # A cut key=value line loses whole pairs, never part of a value.
    assert dec.decode(Frame(b"1.5,t=9"), ts=1.0) == [Sample("vib1.temp", 1.0, 8.0, Quality.GOOD)]


def test_blank_frames_are_ignored() -> None:
    assert decoder().decode(Frame(b" \r"), ts=1.0) == []


def test_line_health_is_logged_on_transitions_only(caplog: pytest.LogCaptureFixture) -> None:
    dec = decoder()
    with caplog.at_level(logging.INFO):
        for frame in [b"rms=1", b"junk", b"junk", b"rms=x", b"rms=2", b"rms=3", b"junk"]:
            dec.decode(Frame(frame), ts=1.0)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert "unreadable data" in messages[0] and "no_match" in messages[0]
    assert "readable again after 3 bad frames" in messages[1]
    assert "unreadable data" in messages[2]
    assert dict(dec.counters) == {"frames": 7, "good": 3, "no_match": 3, "bad_value": 1}


@given(st.binary(max_size=120), st.booleans(), st.booleans())
def test_decoder_never_raises_on_device_bytes(data: bytes, complete: bool, checksum: bool) -> None:
    dec = decoder(checksum=checksum)
    samples = dec.decode(Frame(data, complete), ts=1.0)
    assert {s.signal for s in samples} <= {"vib1.rms", "vib1.temp"}
    assert all((s.value is None) == (s.quality is Quality.BAD) for s in samples)
    assert dec.counters["frames"] == 1
