"""Framers alone: however the bytes are chunked, the same frames come out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.serial.framing import (
    DelimiterFramer,
    FixedFramer,
    Frame,
    Framer,
    IdleFramer,
)


def feed_in_chunks(framer: Framer, data: bytes, cuts: list[int]) -> list[Frame]:
    """Feed ``data`` split at the positions ``cuts``."""
    frames: list[Frame] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        frames += framer.feed(data[start:cut])
        start = max(start, cut)
    return frames


# Bodies whose first delimiter is the one that ends them (b"a\r" + b"\r\n" is not).
bodies = st.lists(
    st.binary(max_size=30).filter(lambda b: (b + b"\r\n").find(b"\r\n") == len(b)),
    max_size=20,
)
cuts = st.lists(st.integers(min_value=0, max_value=800), max_size=30)


@given(bodies, cuts)
def test_delimiter_frames_survive_any_chunking(frames: list[bytes], at: list[int]) -> None:
    stream = b"".join(body + b"\r\n" for body in frames)
    got = feed_in_chunks(DelimiterFramer(b"\r\n", max_length=64), stream, at)
    assert [frame.data for frame in got] == frames
    assert all(frame.complete for frame in got)


def test_overlong_run_is_reported_once_and_skipped() -> None:
    framer = DelimiterFramer(b"\n", max_length=4)
    got = framer.feed(b"ok\n" + b"x" * 10)
    got += framer.feed(b"y" * 10 + b"\nnext\n")
    assert got == [Frame(b"ok"), Frame(b"xxxx", complete=False), Frame(b"next")]


def test_overlong_frame_ending_in_the_same_chunk_is_incomplete() -> None:
    framer = DelimiterFramer(b"\n", max_length=3)
    assert framer.feed(b"abcdef\nabc\n") == [Frame(b"abc", complete=False), Frame(b"abc")]


@given(st.lists(st.binary(min_size=6, max_size=6), max_size=20), cuts)
def test_fixed_frames_survive_any_chunking(frames: list[bytes], at: list[int]) -> None:
    got = feed_in_chunks(FixedFramer(6), b"".join(frames), at)
    assert [frame.data for frame in got] == frames


@given(
    st.lists(st.binary(min_size=5, max_size=5), max_size=10),
    st.binary(max_size=20).map(lambda b: b.replace(b"#", b"")),
    cuts,
)
def test_fixed_frames_resync_on_start_marker(
    frames: list[bytes], noise: bytes, at: list[int]
) -> None:
    framer = FixedFramer(6, start=b"#")
    got = feed_in_chunks(framer, noise + b"".join(b"#" + body for body in frames), at)
    assert [frame.data for frame in got] == [b"#" + body for body in frames]
    assert framer.skipped == len(noise)


def test_idle_framer_ends_a_frame_on_flush() -> None:
    framer = IdleFramer(max_length=8)
    assert framer.feed(b"\x01\x03") == []
    assert framer.feed(b"\x02") == []
    assert framer.flush() == Frame(b"\x01\x03\x02")
    assert framer.flush() is None


def test_idle_framer_cuts_an_endless_frame() -> None:
    framer = IdleFramer(max_length=4)
    assert framer.feed(b"abcdefg") == [Frame(b"abcd", complete=False)]
    assert framer.flush() == Frame(b"efg", complete=False)
    assert framer.feed(b"hi") == []
    assert framer.flush() == Frame(b"hi")


def test_reset_forgets_the_tail() -> None:
    framer = DelimiterFramer(b"\n", max_length=10)
    framer.feed(b"half a li")
    framer.reset()
    assert framer.feed(b"ne\n") == [Frame(b"ne")]


@given(st.binary(max_size=2000), cuts)
def test_noise_costs_bounded_memory(noise: bytes, at: list[int]) -> None:
    framer = DelimiterFramer(b"\r\n", max_length=16)
    frames = feed_in_chunks(framer, noise, at)
    assert all(len(frame.data) <= 16 for frame in frames)
    assert len(framer._buf) <= 16 + 1
    # What was kept is never more than the bytes fed: nothing invented.
    assert sum(len(frame.data) for frame in frames) <= len(noise)
