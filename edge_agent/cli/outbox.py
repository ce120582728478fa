"""``edge-agent outbox status``: the backlog per sink and class, oldest age, drops.

Reads the outbox file read-only, so it is safe beside a running agent.
Exit codes: 0 shown, 74 (EX_IOERR) the outbox file cannot be read,
78 bad config (raised as ConfigError to the CLI).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.cli.render import age

if TYPE_CHECKING:
    from edge_agent.forward.outbox_status import OutboxStatus

EX_IOERR = 74


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox status`` to the ``edge-agent`` command."""
    outbox = subparsers.add_parser("outbox", help="inspect the store-and-forward outbox")
    verbs = outbox.add_subparsers(required=True, metavar="ACTION")
    p = verbs.add_parser("status", help="backlog per sink and class, oldest age, drops")
    p.add_argument("--config", "-c", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=status_command)


def status_command(args: argparse.Namespace) -> int:
    """Print the outbox status of the agent configured in ``args.config``."""
    import sqlite3

    from edge_agent.config import load_config
    from edge_agent.forward.outbox_status import OutboxStatus, open_readonly, read_status

    config = load_config(args.config)
    path = config.data_path(config.outbox.path)
    sinks = [sink.name for sink in config.sinks]
    if not path.exists():
        print(f"no outbox at {path} yet: nothing stored", file=sys.stderr)
        status = OutboxStatus([])
    else:
        try:
            db = open_readonly(path)
            try:
                status = read_status(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            print(f"edge-agent: cannot read the outbox {path}: {exc}", file=sys.stderr)
            return EX_IOERR
    data = status_dict(status, sinks, time.time())
    print(json.dumps(data, indent=2) if args.json else render(data, path))
    return 0


_CLASSES = ("alert", "command", "telemetry")
_COUNTERS = ("dropped_alert", "dropped_telemetry", "rejected")


def status_dict(status: OutboxStatus, sinks: list[str], now: float) -> dict[str, Any]:
    """``{sink: {alert: {rows, bytes, oldest_age_s}, telemetry: ..., dropped_alert, ...}}``."""
    names = list(dict.fromkeys([*sinks, *(b.sink for b in status.backlog), *status.counters]))
    out: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = {"configured": name in sinks}
        for kind in _CLASSES:
            found = [b for b in status.backlog if b.sink == name and b.kind == kind]
            rows = found[0] if found else None
            entry[kind] = {
                "rows": rows.rows if rows else 0,
                "bytes": rows.bytes if rows else 0,
                "oldest_age_s": round(now - rows.oldest, 1) if rows and rows.oldest else None,
            }
        counters = status.counters.get(name, {})
        entry.update({key: counters.get(key, 0) for key in _COUNTERS})
        out[name] = entry
    return out


def render(data: dict[str, Any], path: Path) -> str:
    """A table for people."""
    lines = [f"outbox {path}", ""]
    lines.append(f"{'sink':<16} {'class':<10} {'rows':>8} {'bytes':>10} {'oldest':>10}")
    for name, entry in data.items():
        label = name if entry["configured"] else f"{name} (gone)"
        for kind in _CLASSES:
            row = entry[kind]
            oldest = age(row["oldest_age_s"])
            lines.append(f"{label:<16} {kind:<10} {row['rows']:>8} {row['bytes']:>10} {oldest:>10}")
    lines.append("")
    lines.append(f"{'sink':<16} {'dropped alerts':>15} {'dropped telemetry':>18} {'rejected':>9}")
    for name, entry in data.items():
        lines.append(
            f"{name:<16} {entry['dropped_alert']:>15} {entry['dropped_telemetry']:>18}"
            f" {entry['rejected']:>9}"
        )
    return "\n".join(lines)
