"""``edge-agent status`` and ``edge-agent alerts``: the site view's overview in a terminal.

Both read the data folder directly (:mod:`edge_agent.cli.data_folder`), so they work
beside a running agent and without its secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.cli.render import age

if TYPE_CHECKING:
    from edge_agent.cli.data_folder import DataFolder


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` to the command tree (``alerts`` lives in :mod:`edge_agent.cli.alerts`)."""
    status = subparsers.add_parser(
        "status", help="sources, sinks and open alerts, from the data folder"
    )
    _add_folder(status)
    status.set_defaults(func=status_command)


def _add_folder(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", "-c", type=Path, help="agent config (finds agent.data_dir)")
    group.add_argument("--data-dir", type=Path, help="the agent's data folder")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _folder(args: argparse.Namespace) -> DataFolder:
    from edge_agent.cli.data_folder import DataFolder

    if args.config is not None:
        return DataFolder.from_config(args.config)
    return DataFolder.at(args.data_dir)


def status_command(args: argparse.Namespace) -> int:
    """Handler of ``edge-agent status``."""
    from edge_agent.cli.data_folder import overview

    data = asyncio.run(overview(_folder(args)))
    print(json.dumps(data, indent=2) if args.json else render_overview(data))
    return 0


def alerts_command(args: argparse.Namespace) -> int:
    """Handler of ``edge-agent alerts``."""
    from edge_agent.cli.data_folder import alert_list

    alerts = asyncio.run(alert_list(_folder(args), args.all))
    if args.json:
        print(json.dumps(alerts, indent=2))
    elif not alerts:
        print("no alerts kept" if args.all else "no open alerts")
    else:
        print(render_alerts(alerts))
    return 0


def render_overview(data: dict[str, Any]) -> str:
    """The overview as plain tables."""
    lines = [f"agent {data['agent']}   data {data['data_dir']}", "", "OPEN ALERTS"]
    lines.append(render_alerts(data["open_alerts"]) if data["open_alerts"] else "  none")
    lines += ["", "SOURCES (from the twin; last errors are on the page and /api/v1/status)"]
    rows: list[tuple[str, ...]] = [("SOURCE", "LINK", "STATE", "SIGNALS", "STALE", "BAD", "NEWEST")]
    rows += [
        (s["name"], s["link"], s["state"], str(s["signals"]), str(s["stale"]), str(s["bad"]),
         age(s["newest_age_s"]))
        for s in data["sources"]
    ]  # fmt: skip
    lines.append(_table(rows))
    lines += ["", "SINKS (from the outbox)"]
    sinks: list[tuple[str, ...]] = [("SINK", "BACKLOG", "OLDEST", "DROPPED", "REJECTED")]
    sinks += [
        (s["name"], str(s["backlog_rows"]), age(s["oldest_age_s"]), str(s["dropped"]),
         str(s["rejected"]))
        for s in data["sinks"]
    ]  # fmt: skip
    lines.append(_table(sinks))
    return "\n".join(lines)


def render_alerts(alerts: list[dict[str, Any]]) -> str:
    """One line per alert."""
    head = ("STATE", "SEVERITY", "ASSET", "CAUSE", "RAISED", "CLEARED", "REASON")
    rows: list[tuple[str, ...]] = [head]
    for a in alerts:
        rows.append(
            (a["state"], a["severity"], a["asset"], f"{a['kind']}: {a['cause']}",
             _clock(a["raised_at"]), _clock(a["cleared_at"]), a["reason"])
        )  # fmt: skip
    return _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _clock(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
