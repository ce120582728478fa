"""The ``edge-agent`` command: run | check-config | read-once | demo | and the areas' tools.

Each area registers its own subcommands (``register(subparsers)``) from the
module named in :data:`COMMAND_MODULES`; those modules import heavy libraries
only inside their handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import __version__, blas, gc_pause
from edge_agent.cli.flags import duration
from edge_agent.errors import (
    EX_CONFIG,
    AgentError,
    ConfigError,
    ModelError,
    SourceError,
    StorageError,
)
from edge_agent.logs import apply_level, setup_logging
from edge_agent.storage_guard import EX_CANTCREAT

log = logging.getLogger("edge_agent")

COMMAND_MODULES: tuple[str, ...] = (
    "edge_agent.cli.probe",
    "edge_agent.cli.opcua",
    "edge_agent.cli.serial_monitor",
    "edge_agent.cli.twin",
    "edge_agent.cli.detect",
    "edge_agent.cli.alerts",
    "edge_agent.cli.outbox",
    "edge_agent.cli.sim",
    "edge_agent.cli.train",
    "edge_agent.cli.site",
)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


CORE_COMMANDS = frozenset({"run", "check-config", "read-once", "demo"})


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(areas=command_of(argv) not in CORE_COMMANDS)
    args, extra = parser.parse_known_args(argv)
    if extra and not hasattr(args, "args"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:  # `train` hands its flags on to its own parser (argparse.REMAINDER stops at -x)
        args.args = [*extra, *args.args]
    setup_logging(args.log_level or getattr(args, "quiet_level", None))
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; expected faults become exit codes (78: config or model)."""
    try:
        return int(args.func(args))
    except (ConfigError, ModelError) as exc:
        print(f"edge-agent: {type(exc).__name__}:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except StorageError as exc:  # an operator is needed: the unit does not restart on 73
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    except (AgentError, OSError) as exc:  # e.g. the twin locked by another agent, no data_dir
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1


def command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (``--log-level`` and its value skipped), if any."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--log-level":
            next(tokens, None)
        elif not token.startswith("-"):
            return token
    return None


def build_parser(areas: bool = True) -> argparse.ArgumentParser:
    """The command tree; without ``areas``, only the core commands.

    ``run`` needs none of the areas' tools: importing their modules (training,
    the twin's CLI...) cost about 0.2 s of the time to READY.
    """
    parser = argparse.ArgumentParser(
        prog="edge-agent", description="edge-agent: the edge agent for industrial gateways"
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default=None, help="debug|info|warning|error")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_run(sub)
    _add_check_config(sub)
    _add_read_once(sub)
    _add_demo(sub)
    for name in COMMAND_MODULES if areas else ():
        importlib.import_module(name).register(sub)
    return parser


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run the agent (the systemd service's command)")
    p.add_argument("--config", "-c", type=Path, required=True)
    p.set_defaults(func=_run)


def _add_check_config(sub: Subparsers) -> None:
    p = sub.add_parser("check-config", help="validate a config file and load its models")
    p.add_argument("--config", "-c", type=Path)
    # The positional form of earlier versions, still in installed unit files: kept, unlisted.
    p.add_argument("path", nargs="?", type=Path, help=argparse.SUPPRESS)
    p.set_defaults(func=_check_config, parser=p)


def _add_read_once(sub: Subparsers) -> None:
    p = sub.add_parser("read-once", help="read every signal once and print JSON lines")
    p.add_argument("--config", "-c", type=Path, required=True)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per source")
    p.set_defaults(func=_read_once)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="simulated plant + agent, a fault injected, alerts shown")
    p.add_argument("--duration", type=duration, default=75.0, help="e.g. 75s, 2m (default 75s)")
    p.add_argument("--keep", type=Path, default=None, help="keep the demo's data in this folder")
    p.add_argument("--speed", type=float, default=1.0, help="plant seconds per second (default 1)")
    p.set_defaults(func=_demo, quiet_level="warning")


def _run(args: argparse.Namespace) -> int:
    from edge_agent.config_fork import ForkedConfig
    from edge_agent.secret_files import check_secret_files

    blas.one_thread()  # before numpy is imported (blas.py says why)
    gc_pause.pause_until_ready()  # the agent resumes it at READY (gc_pause.py says why)
    try:
        parsing = ForkedConfig.start(args.config)  # parse debris stays in the child
        from edge_agent.agent import run_agent, run_until_signalled  # imported meanwhile

        config = parsing.result()
        check_secret_files(config, args.config)
        # Data files 0640 however the agent is started (the unit sets UMask=0027 too).
        os.umask(os.umask(0o027) | 0o027)
        if args.log_level is None:
            apply_level(config.agent.log_level)
        run_until_signalled(run_agent(config))
    finally:
        gc_pause.resume()  # a start that failed before READY
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from edge_agent.preflight import check_config
    from edge_agent.secret_files import check_secret_files

    if (args.config is None) == (args.path is None):
        args.parser.error("give the config file as --config/-c PATH")
    args.config = args.config or args.path
    checked = check_config(args.config)
    check_secret_files(checked.config, args.config)
    # A model that loads but may hurt here (detect/u8s8_risk.py) was already warned of by
    # its load's WARNING, the one the agent logs at start: not printed a second time.
    for source in checked.config.sources:  # a source config may say what loads but will hurt
        for warning in getattr(source, "warnings", list)():
            print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: {checked.summary()}")
    return 0


def _source(config: Any) -> Any:
    from edge_agent.registry import build_source

    return build_source(config)


def _read_once(args: argparse.Namespace) -> int:
    from edge_agent.config import load_config

    config = load_config(args.config)
    import asyncio  # not at the top: `run` forks its config child before asyncio is imported

    failed = asyncio.run(_read_all([_source(c) for c in config.sources], args.timeout))
    return 2 if failed else 0


async def _read_all(sources: list[Any], per_source_s: float) -> int:
    failed = 0
    for source in sources:
        name = source.config.name
        latest: dict[str, Any] = {}
        try:
            missing = await _read_source(source, per_source_s, latest)
        except (SourceError, TimeoutError) as exc:
            missing = {info.signal for info in source.signals()} - latest.keys()
            if not latest:
                print(f"{name}: failed: {str(exc) or 'timed out'}", file=sys.stderr)
                failed += 1
                continue
        if not latest:
            print(f"{name}: failed: timed out, no reading in {per_source_s:g} s", file=sys.stderr)
            failed += 1
            continue
        for sample in latest.values():
            record = {"signal": sample.signal, "ts": sample.ts}
            record |= {"value": sample.value, "quality": str(sample.quality)}
            print(json.dumps(record))
        if missing:
            print(f"{name}: no reading for {', '.join(sorted(missing))}", file=sys.stderr)
            failed += 1
        failed += _report_problems(source)
    return failed


def _report_problems(source: Any) -> int:
    """Nodes the source says cannot be read (unknown, not readable): 1 when there are any."""
    problems: dict[str, str] = getattr(source, "problems", dict)()
    for signal, problem in sorted(problems.items()):
        print(f"{signal}: cannot be read: {problem}", file=sys.stderr)
    return 1 if problems else 0


async def _read_source(source: Any, per_source_s: float, latest: dict[str, Any]) -> set[str]:
    """Read until every signal has a sample (subscriptions and serial lines arrive late).

    Stops reading half a second before ``per_source_s`` so what did arrive is kept;
    ``latest`` is filled as samples come, so a timeout still leaves them there.
    Returns the signals that got no reading.
    """
    import asyncio

    wanted = {info.signal for info in source.signals()}
    interval = float(source.config.interval)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + per_source_s
    async with asyncio.timeout_at(give_up), source:
        stop = min(give_up - 0.5, loop.time() + max(2.0, 3 * interval))
        while True:
            for sample in await source.read():
                latest[sample.signal] = sample
            if wanted <= latest.keys() or loop.time() >= stop:
                return wanted - latest.keys()
            await asyncio.sleep(min(0.2, interval))


def _demo(args: argparse.Namespace) -> int:
    blas.one_thread()  # before the plant and the agent import numpy (blas.py says why)
    from edge_agent.cli.demo import run_demo

    return run_demo(args.duration, args.keep, args.speed)
