"""``edge-agent twin status | export | plot``: look into the twin, beside a running agent.

The file is opened read-only (WAL lets it be read while the agent writes), from
``--config`` (``twin.path`` under ``agent.data_dir``) or directly with ``--db``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.schema import parse_duration

if TYPE_CHECKING:
    from edge_agent.twin.signal_status import SignalStatus
    from edge_agent.twin.store import SignalStore

EXIT_USAGE = 2
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``edge-agent twin`` and its subcommands to the command tree."""
    twin = subparsers.add_parser("twin", help="the edge twin: latest values, export, plot")
    sub = twin.add_subparsers(required=True, metavar="ACTION")
    status = sub.add_parser("status", help="each signal: latest value, quality, age, stale")
    _add_source(status)
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    status.set_defaults(func=run_status)
    export = sub.add_parser("export", help="a signal's history as CSV or JSON lines")
    _add_source(export)
    _add_window(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--out", type=Path, default=None, help="file (default: stdout)")
    export.set_defaults(func=run_export)
    plot = sub.add_parser("plot", help="a PNG picture of a signal (needs plant-edge-agent[plot])")
    _add_source(plot)
    _add_window(plot)
    plot.add_argument("--out", type=Path, required=True, help="PNG file to write")
    plot.set_defaults(func=run_plot)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", "-c", type=Path, help="agent config (finds twin.path)")
    group.add_argument("--db", type=Path, help="twin SQLite file")


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signal", required=True, help="e.g. press1.temperature")
    parser.add_argument("--since", type=_duration, default=3600.0, help="e.g. 1h (default 1h)")
    parser.add_argument(
        "--rollups", action="store_true", help="per-minute min/max/mean/last/count instead of raw"
    )


def open_store(args: argparse.Namespace) -> SignalStore:
    """Open the twin named by ``--config`` or ``--db``, read-only.

    Raises:
        ConfigError: the config is invalid (the CLI exits 78).
        StoreError: the file is missing or not a twin.
    """
    from edge_agent.errors import StoreError
    from edge_agent.twin.config import TwinConfig
    from edge_agent.twin.store import SignalStore

    if args.config is not None:
        from edge_agent.config import load_config

        config = load_config(args.config, offline=True)  # reads a file: no secrets needed
        twin, path = config.twin, config.data_path(config.twin.path)
    else:
        twin, path = TwinConfig(), args.db
    if not path.is_file():
        raise StoreError(f"no twin file at {path}")
    return SignalStore.open(path, twin, readonly=True)


def run_status(args: argparse.Namespace) -> int:
    """Handler of ``twin status``."""
    from edge_agent.errors import StoreError

    try:
        store = open_store(args)
    except StoreError as exc:
        return _fail(exc)
    lines = store.status(time.time())
    store.close()
    if args.json:
        for line in lines:
            print(json.dumps(_status_dict(line)))
    else:
        print(format_status(lines))
    return 0


def _status_dict(line: SignalStatus) -> dict[str, Any]:
    sample = line.sample
    return {
        "signal": line.info.signal,
        "value": None if sample is None else sample.value,
        "unit": line.info.unit,
        "quality": None if sample is None else str(sample.quality),
        "ts": None if sample is None else sample.ts,
        "age": line.age,
        "stale": line.stale,
    }


def format_status(lines: list[SignalStatus]) -> str:
    """A plain table, one signal per line."""
    rows: list[tuple[str, ...]] = [("SIGNAL", "VALUE", "UNIT", "QUALITY", "AGE", "STALE")]
    for line in lines:
        sample = line.sample
        value = "-" if sample is None or sample.value is None else f"{sample.value:.6g}"
        quality = "-" if sample is None else str(sample.quality)
        age = "-" if line.age is None else _age(line.age)
        rows.append(
            (line.info.signal, value, line.info.unit, quality, age, "stale" if line.stale else "")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``twin export``."""
    from edge_agent.twin import export

    loaded = _load_window(args)
    if isinstance(loaded, int):
        return loaded
    samples, rollups, _ = loaded
    if args.rollups:
        rows, fields = export.rollup_rows(rollups), export.ROLLUP_FIELDS
    else:
        rows, fields = export.sample_rows(samples), export.SAMPLE_FIELDS
    if args.out is None:
        export.write_rows(rows, fields, args.format, sys.stdout)
    else:
        with args.out.open("w", encoding="utf-8", newline="") as out:
            export.write_rows(rows, fields, args.format, out)
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """Handler of ``twin plot``."""
    from edge_agent.twin import export

    loaded = _load_window(args)
    if isinstance(loaded, int):
        return loaded
    samples, rollups, unit = loaded
    try:
        export.plot(args.signal, samples, rollups, unit, args.out)
    except export.PlotUnavailableError as exc:
        return _fail(exc)
    print(f"wrote {args.out}")
    return 0


def _load_window(args: argparse.Namespace) -> tuple[list[Any], list[Any], str] | int:
    """Samples (or rollups) of ``--signal`` over ``--since``, or an exit code."""
    from edge_agent.errors import StoreError

    try:
        store = open_store(args)
    except StoreError as exc:
        return _fail(exc)
    try:
        infos = {info.signal: info for info in store.signals()}
        if args.signal not in infos:
            close = difflib.get_close_matches(args.signal, list(infos), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            print(f"edge-agent twin: unknown signal {args.signal!r}{hint}", file=sys.stderr)
            return EXIT_USAGE
        since = time.time() - args.since
        if args.rollups:
            return [], store.rollups(args.signal, since), infos[args.signal].unit
        return store.history(args.signal, since), [], infos[args.signal].unit
    finally:
        store.close()


def _fail(exc: Exception) -> int:
    print(f"edge-agent twin: {exc}", file=sys.stderr)
    return EXIT_FAILED
