"""``edge-agent alerts [--all]`` lists alerts; ``alerts ack|shelve|unshelve ID`` acts on one.

The command runs beside a running agent, without its secrets: it reads only
``agent.data_dir`` and ``outbox.path`` from the config (no ``${VAR}`` is
resolved, no source is contacted), checks that the alert is open in the outbox
file, queues the request there (:mod:`edge_agent.detect.requests`) and waits up
to ``--wait`` seconds for the agent's answer. The agent turns each request into
an alert event upstream. Exit codes: 0 applied (or queued, when the agent did
not answer in time: it applies the request when it runs), 1 no such open alert
or the agent refused it, 78 bad config.

Without an action, ``alerts`` lists the open alerts (``--all``: the kept history) from
the data folder (:func:`edge_agent.cli.site.alerts_command`).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.schema import parse_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``alerts`` (the listing) and its actions to the ``edge-agent`` command."""
    p = subparsers.add_parser("alerts", help="list alerts; ack, shelve or unshelve one")
    p.add_argument("--config", "-c", type=Path, help="agent config (finds agent.data_dir)")
    p.add_argument("--data-dir", type=Path, help="the agent's data folder (listing only)")
    p.add_argument("--all", action="store_true", help="every kept alert, open or cleared")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_dispatch, action=None)
    sub = p.add_subparsers(metavar="ACTION")
    for action, text in (
        ("ack", "acknowledge an open alert"),
        ("shelve", "shelve an alert's cause for a time (no new raise until it ends)"),
        ("unshelve", "end a shelve now"),
    ):
        q = sub.add_parser(action, help=text)
        q.add_argument("id", help="alert id (or a unique prefix of it)")
        # SUPPRESS: a --config given before the action is not overwritten by a default.
        q.add_argument("--config", "-c", type=Path, default=argparse.SUPPRESS)
        q.add_argument("--by", default="", help="who (default: the login name)")
        q.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the agent")
        if action == "shelve":
            q.add_argument("--for", dest="duration", required=True, help="e.g. 30m, 2h")
        q.set_defaults(action=action)


def _dispatch(args: argparse.Namespace) -> int:
    from edge_agent.cli.site import alerts_command

    if args.action is None:
        if (args.config is None) == (args.data_dir is None):
            print("edge-agent alerts: give --config or --data-dir", file=sys.stderr)
            return 2
        return alerts_command(args)
    if args.config is None:
        print(f"edge-agent alerts {args.action}: needs --config", file=sys.stderr)
        return 2
    return request_command(args)


def outbox_path(config: Path) -> Path:
    """The outbox file named by a config, read without validating the rest of it.

    Raises:
        ConfigError: the file cannot be read or is not a mapping.
    """
    from edge_agent.config_yaml import load_yaml, read_config_bytes

    data, _ = load_yaml(read_config_bytes(config), config)
    if not isinstance(data, dict):
        raise ConfigError(f"{config}:1: the config must be a mapping of sections")
    agent: dict[str, Any] = data.get("agent") or {}
    outbox: dict[str, Any] = data.get("outbox") or {}
    base = config.resolve().parent
    data_dir = base / str(agent.get("data_dir", "/var/lib/edge-agent"))
    return data_dir / str(outbox.get("path", "outbox.db"))


def request_command(args: argparse.Namespace) -> int:
    """Queue one request and report what the agent made of it."""
    from edge_agent.detect import requests
    from edge_agent.forward import alert_state

    path = outbox_path(args.config)
    if not path.exists():
        print(f"edge-agent alerts: no outbox at {path} (has the agent run?)", file=sys.stderr)
        return 1
    until = 0.0
    if args.action == "shelve":
        try:
            until = time.time() + parse_duration(args.duration)
        except ValueError as exc:
            raise ConfigError(f"--for: {exc}") from None
    db = requests.connect(path)
    try:
        matches = [a for a in alert_state.open_alerts(db) if a.id.startswith(args.id)]
        if len(matches) != 1:
            what = "no open alert" if not matches else "several open alerts"
            print(f"edge-agent alerts: {what} with id {args.id!r}", file=sys.stderr)
            return 1
        by = args.by or _login()
        n = requests.submit(db, args.action, matches[0].id, until, by)
        return _wait(db, n, args.wait, matches[0].id)
    except sqlite3.Error as exc:
        print(f"edge-agent alerts: {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _wait(db: sqlite3.Connection, n: int, seconds: float, alert: str) -> int:
    from edge_agent.detect import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = requests.result(db, n)
        if answer is not None:
            print(f"{alert}: {answer}")
            return 1 if answer.startswith("refused") else 0
        time.sleep(0.2)
    print(f"{alert}: request {n} queued; the agent applies it when it runs")
    return 0


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
