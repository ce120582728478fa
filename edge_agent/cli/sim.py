"""``edge-agent sim``: run the simulated plant on its own, or export its signals to CSV.

For commissioning practice: the plant listens where it says, prints its register
and node map and the ``sources:`` block of an agent config that reads it, then a
status line every few seconds until ``--duration`` has passed or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.cli.flags import duration, renamed
from edge_agent.schema import format_duration

if TYPE_CHECKING:
    from edge_agent.sim.plant import Plant
    from edge_agent.sim.scenario import Scenario


# Signals shown on the status line: name, label, format.
_STATUS = (
    ("motor_current", "current", "{:5.1f} A"),
    ("vibration_rms", "vib", "{:4.2f} mm/s"),
    ("bearing_temp", "bearing", "{:4.1f} degC"),
    ("discharge_pressure", "pressure", "{:4.2f} bar"),
    ("flow", "flow", "{:5.1f} m3/h"),
    ("tank_level", "level", "{:4.1f} %"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``edge-agent sim`` to the command tree."""
    p = subparsers.add_parser(
        "sim",
        help="run the simulated pump skid (Modbus, OPC UA, serial) for commissioning practice",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--scenario", default="commissioning", help="demo | commissioning | normal")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--modbus-port", type=int, default=0, help="default: a free port")
    p.add_argument("--opcua-port", type=int, default=0, help="default: a free port")
    p.add_argument("--no-opcua", action="store_true", help="do not serve OPC UA")
    p.add_argument("--no-serial", action="store_true", help="do not serve the serial probe")
    p.add_argument("--duration", type=duration, default=None, help="e.g. 10m (default: forever)")
    p.add_argument("--speed", type=float, default=1.0, help="plant seconds per second (default 1)")
    p.add_argument("--status-every", type=duration, default=5.0, help="e.g. 5s; 0s: quiet")
    p.add_argument("--out", type=Path, default=None, help="write --duration of signals to this CSV")
    renamed(p, "--csv", "--out")
    p.add_argument("--step", type=duration, default=1.0, help="CSV sample step (default 1s)")
    p.set_defaults(func=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    """Handler of ``edge-agent sim``; returns the exit code."""
    from edge_agent.sim.scenario import get_scenario

    try:
        scenario = get_scenario(args.scenario)
    except ValueError as exc:
        print(f"edge-agent sim: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        return _export(args, scenario)
    if args.speed <= 0:
        print("edge-agent sim: --speed must be above 0", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, scenario))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # Ctrl-C or SIGTERM: the plant has closed its peers on the way out
    except OSError as exc:
        print(f"edge-agent sim: {exc}", file=sys.stderr)
        return 1
    return 0


def _export(args: argparse.Namespace, scenario: Scenario) -> int:
    from edge_agent.sim.physics import simulate, write_csv

    duration = args.duration if args.duration is not None else scenario.duration_s
    series = simulate(duration, args.step, args.seed, scenario)
    write_csv(args.out, series)
    print(
        f"{args.out}: {series['t'].size} rows, {len(series) - 1} signals, scenario {scenario.name}"
    )
    return 0


async def _serve(args: argparse.Namespace, scenario: Scenario) -> None:
    from edge_agent.sim.plant import Plant

    plant = Plant(
        scenario, args.seed, args.host, args.modbus_port, args.opcua_port,
        opcua=not args.no_opcua, serial=not args.no_serial, speed=args.speed,
    )  # fmt: skip
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    async with plant:
        print(describe(plant), flush=True)
        try:
            async with asyncio.timeout(args.duration):
                await _status_forever(plant, args.status_every)
        except TimeoutError:
            pass
        finally:
            print(f"stopping after {format_duration(round(plant.elapsed()))}", flush=True)


async def _status_forever(plant: Plant, every: float) -> None:
    if every <= 0:
        await asyncio.Event().wait()
    while True:
        await asyncio.sleep(every)
        print(status_line(plant), flush=True)


def describe(plant: Plant) -> str:
    """Where the plant listens, what it serves, its fault schedule, and the agent config."""
    import yaml

    from edge_agent.sim.signal_map import node_map_text, register_map_text

    scen = plant.scenario
    parts = [
        f"simulated pump skid, scenario {scen.name}: {scen.description}",
        f"plant clock x{plant.speed:g}" if plant.speed != 1 else "",
        f"\nModbus TCP  {plant.modbus_url}  unit 1, holding (and input) registers:",
        _indent(register_map_text()),
    ]
    if plant.opcua_url:
        parts += [f"\nOPC UA  {plant.opcua_url}  (no security)", _indent(node_map_text())]
    if plant.serial_path:
        parts.append(f"\nserial probe  {plant.serial_path}  lines: VIB,rms=..,peak=..,temp=..")
    parts.append("\nfault schedule (seconds after start):")
    parts += [_indent(_fault_text(f)) for f in scen.faults] or ["  none"]
    snippet = yaml.safe_dump({"sources": plant.source_configs()}, sort_keys=False)
    parts += ["\nagent config for this plant:", _indent(snippet.rstrip()), "\nCtrl-C stops."]
    return "\n".join(part for part in parts if part)


def _fault_text(fault: Any) -> str:
    what = f"{fault.kind} {fault.signal}".strip()
    held = f" held at {fault.value:g}" if fault.value is not None else ""
    return f"{fault.start:7.0f} - {fault.end:<7.0f} {what}{held}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def status_line(plant: Plant) -> str:
    """One line: plant time, the main readings, and the faults now active."""
    t = plant.elapsed()
    readings = "  ".join(
        f"{label} {fmt.format(plant.values[name])}" for name, label, fmt in _STATUS
    )
    active = plant.scenario.active(t)
    faults = ", ".join(f"{f.kind} {f.signal}".strip() for f in active) or "-"
    return f"t={t:6.0f} s  {readings}  | faults: {faults}"
