"""``edge-agent serial-monitor``: watch what a serial sensor sends, and how it decodes.

Commissioning a line sensor means finding its settings and writing a pattern.
With a port alone the monitor shows every frame as it is cut (delimiter, fixed
length or idle gap)::

    edge-agent serial-monitor /dev/ttyUSB0 --baud 9600 --delimiter '\\r\\n'

A sensor behind a serial device server in raw TCP mode is watched the same way
at ``tcp://host:port`` (the line settings are then the server's, not ``--baud``)::

    edge-agent serial-monitor tcp://10.0.0.7:4001 --delimiter '\\r\\n'

With a config it opens that source exactly as the agent would and shows each
frame followed by the samples decoded from it, then the line's counters::

    edge-agent serial-monitor --config agent.yaml --source vib1 --seconds 10

With ``--capture FILE`` it decodes bytes saved from the line (for instance with
``cat /dev/ttyUSB0 > FILE``) against the config instead, without a port.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections import Counter

    from edge_agent.sources.serial.config import SerialSourceConfig
    from edge_agent.sources.serial.framing import Frame
    from edge_agent.sources.serial.source import SerialSource
    from edge_agent.types import Sample

EX_UNAVAILABLE = 69  # sysexits: the port cannot be opened or was lost
EX_USAGE = 64


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serial-monitor`` subcommand."""
    p = subparsers.add_parser(
        "serial-monitor",
        help="print the frames a serial sensor sends and the samples decoded from them",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "port",
        nargs="?",
        help="the port, e.g. /dev/ttyUSB0 or tcp://10.0.0.7:4001 (without --config)",
    )
    p.add_argument("--config", "-c", type=Path, help="take the port and parsing from a config")
    p.add_argument("--source", help="name of the serial source in --config")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--parity", choices=("none", "even", "odd", "mark", "space"), default="none")
    p.add_argument("--data-bits", type=int, choices=(5, 6, 7, 8), default=8)
    p.add_argument("--stop-bits", type=float, choices=(1, 1.5, 2), default=1)
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--delimiter", default="\\n", help="frame end, escapes allowed (default \\n)")
    cut.add_argument("--length", type=int, help="fixed frames of this many bytes")
    cut.add_argument("--idle", help="frames end after this much silence, e.g. 50ms")
    p.add_argument("--request", help="send this every second, escapes allowed ('MEAS?\\r\\n')")
    p.add_argument(
        "--capture",
        type=Path,
        help="with --config: decode the bytes in this file instead of opening the port",
    )
    p.set_defaults(func=monitor)


def monitor(args: argparse.Namespace) -> int:
    """Watch the line for ``--seconds``; 0 if it could be watched that long."""
    import asyncio

    from edge_agent.errors import SourceError

    try:
        config = _from_config(args) if args.config else _from_args(args)
    except ValueError as exc:
        print(f"edge-agent serial-monitor: {exc}", file=sys.stderr)
        return EX_USAGE
    if args.capture is not None:
        return _replay(config, args.capture)
    try:
        asyncio.run(_watch(config, args.seconds, decode=bool(args.config)))
    except SourceError as exc:
        print(f"edge-agent serial-monitor: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    return 0


def _replay(config: SerialSourceConfig, capture: Path) -> int:
    """Decode a captured byte stream as the source would; 0 if it had no bad frames."""
    from edge_agent.sources.serial.decode import decode_bytes

    try:
        data = capture.read_bytes()
    except OSError as exc:
        print(f"edge-agent serial-monitor: {exc}", file=sys.stderr)
        return EX_USAGE
    samples, counters = decode_bytes(config, data)
    for sample in samples:
        _print_sample(sample)
    _print_counts(counters)
    return 0 if counters["good"] == counters["frames"] - counters["ignored"] else 1


def _from_config(args: argparse.Namespace) -> SerialSourceConfig:
    from edge_agent.config import load_config
    from edge_agent.sources.serial.config import SerialSourceConfig

    serial = [s for s in load_config(args.config).sources if isinstance(s, SerialSourceConfig)]
    chosen = [s for s in serial if args.source in (None, s.name)]
    if len(chosen) != 1:
        names = ", ".join(s.name for s in serial) or "none"
        raise ValueError(f"name one serial source with --source (the config has: {names})")
    return chosen[0]


def _from_args(args: argparse.Namespace) -> SerialSourceConfig:
    from pydantic import ValidationError

    from edge_agent.sources.serial.config import SerialSourceConfig

    if not args.port:
        raise ValueError("give a port, or --config with --source")
    raw: dict[str, Any] = {
        "type": "serial",
        "name": "monitor",
        "port": args.port,
        "baud": args.baud,
        "parity": args.parity,
        "data_bits": args.data_bits,
        "stop_bits": args.stop_bits,
        "framing": _framing(args),
        "parse": {"pattern": r"(?P<frame>[\s\S]*)"},  # frames are shown, not decoded
        "encoding": "latin-1",
    }
    if args.request:
        raw |= {"request": _unescape(args.request), "response_timeout": "1s"}
    try:
        return SerialSourceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


def _framing(args: argparse.Namespace) -> dict[str, Any]:
    if args.length is not None:
        return {"type": "fixed", "length": args.length}
    if args.idle is not None:
        return {"type": "idle", "gap": args.idle}
    return {"type": "delimiter", "delimiter": _unescape(args.delimiter)}


def _unescape(text: str) -> str:
    """``'\\r\\n'`` typed on a shell becomes CR LF."""
    return codecs.decode(text.encode("latin-1"), "unicode_escape")


async def _watch(config: SerialSourceConfig, seconds: float, decode: bool) -> None:
    from edge_agent.sources.serial.source import SerialSource

    source = SerialSource(config)
    source.tap = _print_frame
    decoder_log = logging.getLogger("edge_agent.sources.serial.decode")
    level = decoder_log.level
    if not decode:  # the catch-all pattern yields text, not numbers: do not warn about it
        decoder_log.setLevel(logging.ERROR)
    try:
        async with source:
            await _show(source, seconds, decode)
    finally:
        decoder_log.setLevel(level)
    _print_counters(source, decode)


async def _show(source: SerialSource, seconds: float, decode: bool) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        samples = await source.read()
        for sample in samples if decode else []:
            _print_sample(sample)
        await asyncio.sleep(min(source.config.interval, max(0.0, end - loop.time())))


def _print_frame(ts: float, frame: Frame) -> None:
    clock = dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]
    cut = "" if frame.complete else "  (cut: no frame end)"
    print(f"{clock}  {len(frame.data):4d} B  {frame.data!r}{cut}", flush=True)


def _print_counters(source: SerialSource, decode: bool) -> None:
    if not decode:  # only framing happened: the parse counters mean nothing here
        print(f"frames: {source.counters['frames']}")
        return
    _print_counts(source.counters)


def _print_sample(sample: Sample) -> None:
    value = "-" if sample.value is None else f"{sample.value:g}"
    print(f"    {sample.signal} = {value} ({sample.quality})")


def _print_counts(counters: Counter[str]) -> None:
    counts = {key: value for key, value in sorted(counters.items()) if value}
    print("counters: " + (", ".join(f"{k}={v}" for k, v in counts.items()) or "no frames"))
