"""``edge-agent demo``: the simulated plant and the agent, a fault injected, alerts shown.

The plant (a real pymodbus server, a real asyncua server and a vibration probe on
a socat pty) plays the ``demo`` scenario; the agent runs the bundled config
(``demo.yaml`` plus the plant's ``sources:``) through the same loader and
runtime as ``edge-agent run``, delivering alerts to a local JSONL file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from edge_agent.config import AgentConfig, load_config
from edge_agent.types import Alert, AlertState, Sample

_SIM = Path(__file__).resolve().parent.parent / "sim"
PAGE_PORT = 8470
"""The demo's page port, or a free one when another program holds it."""
_READINGS = (
    ("pump1.motor_current", "current", "{:5.1f} A"),
    ("pump1.bearing_temp", "bearing", "{:4.1f} °C"),
    ("pump1.vibration_rms", "vib", "{:4.2f} mm/s"),
    ("pump1.discharge_pressure", "press", "{:4.2f} bar"),
    ("pump1.flow", "flow", "{:5.1f} m³/h"),
    ("skid.tank_level", "level", "{:4.1f} %"),
    ("probe.rms", "probe", "{:4.2f} g"),
    ("detect.pump1.health", "health", "{:3.0f}"),
)


class Screen:
    """What a person sees: a reading line every few seconds, alerts as they happen."""

    def __init__(self, clock: Any, out: TextIO = sys.stdout, every: float = 5.0) -> None:
        self.clock = clock
        self.out = out
        self.every = every
        self.latest: dict[str, Sample] = {}
        self.samples = 0
        self.raised: list[Alert] = []
        self.cleared: list[Alert] = []
        self._next_line = 0.0

    def on_samples(self, batch: Sequence[Sample]) -> None:
        """Observer hook (see :class:`edge_agent.observer.Observer`)."""
        self.samples += len(batch)
        for sample in batch:
            self.latest[sample.signal] = sample
        if self.clock() >= self._next_line:
            self._next_line = self.clock() + self.every
            self.out.write(self.readings() + "\n")
            self.out.flush()

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        """Observer hook: print each raise and clear at once."""
        for alert in alerts:
            if alert.state == AlertState.RAISED:
                self.raised.append(alert)
            elif alert.state == AlertState.CLEARED:
                self.cleared.append(alert)
            marks = {AlertState.RAISED: "▲ RAISED ", AlertState.CLEARED: "▼ CLEARED"}
            mark = marks.get(alert.state, f"● {str(alert.state).upper()}")
            self.out.write(
                f"t={self.clock():4.0f}s  {mark} {alert.severity.upper():8} {alert.asset} "
                f"[{alert.kind}: {alert.cause}]  {alert.reason}\n"
            )
        self.out.flush()

    def readings(self) -> str:
        """One line of the latest values (BAD shown as ``BAD``)."""
        parts = []
        for signal_name, label, fmt in _READINGS:
            sample = self.latest.get(signal_name)
            if sample is None:
                continue
            text = "BAD" if sample.value is None else fmt.format(sample.value)
            parts.append(f"{label} {text}")
        return f"t={self.clock():4.0f}s  " + "  ".join(parts)


def run_demo(duration: float, keep: Path | None, speed: float = 1.0) -> int:
    """Run the demo for ``duration`` seconds; ``keep`` keeps its files in that folder.

    ``speed`` plays the plant faster (2: its 70 s scenario in 35 s), for tests.
    """
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_demo(duration, keep.resolve(), speed))
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as folder:
        return asyncio.run(_demo(duration, Path(folder), speed))


async def _demo(duration: float, folder: Path, speed: float) -> int:
    from edge_agent.agent import run_agent
    from edge_agent.sim.plant import Plant

    print("edge-agent demo: starting the simulated pump skid (Modbus, OPC UA, serial probe)...")
    async with Plant(scenario="demo", speed=speed) as plant:
        config = _write_config(plant, folder)
        _header(plant, folder, config)
        screen = Screen(plant.elapsed)
        agent = asyncio.create_task(run_agent(config, screen))
        await _wait(agent, duration)
    _summary(screen, config)
    return 0


async def _wait(agent: asyncio.Task[None], duration: float) -> None:
    """Let the agent run ``duration`` seconds (Ctrl-C ends early), then stop it as SIGTERM would."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    if agent.done():
        agent.result()  # a startup failure: raise it here
    agent.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await agent


def _write_config(plant: Any, folder: Path) -> AgentConfig:
    os.environ["DEMO_MODEL"] = str(_SIM / "demo_pump.onnx")
    os.environ["DEMO_DIR"] = str(folder)
    data = yaml.safe_load((_SIM / "demo.yaml").read_text())
    data["agent"]["data_dir"] = str(folder)
    data["sources"] = plant.source_configs("500ms")
    data["web"] = {"listen": f"127.0.0.1:{_page_port()}"}
    path = folder / "demo-config.yaml"
    text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text.replace(str(_SIM / "demo_pump.onnx"), "${DEMO_MODEL}"))
    return load_config(path)


def _page_port() -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", PAGE_PORT))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _header(plant: Any, folder: Path, config: AgentConfig) -> None:
    print(f"  Modbus TCP  {plant.modbus_url}   OPC UA  {plant.opcua_url}")
    print(f"  serial      {plant.serial_path} (vibration probe)")
    print(f"  scenario    {plant.scenario.description}")
    print(f"  config      {folder / 'demo-config.yaml'}   alerts  {folder / 'alerts.jsonl'}")
    print("  Watch it live in a browser (alerts appear there as they are raised):")
    print(f"http://{config.web.listen}/")
    print()


def _summary(screen: Screen, config: AgentConfig) -> None:
    from edge_agent.forward.outbox_status import open_readonly, read_status

    print()
    print(f"Summary: {screen.samples} samples recorded from {len(screen.latest)} signals")
    print(f"  alerts raised {len(screen.raised)}, cleared {len(screen.cleared)}")
    for alert in screen.raised:
        print(f"    {alert.kind:5} {alert.cause:18} {alert.severity:8} {alert.reason}")
    db = open_readonly(config.data_path(config.outbox.path))
    try:
        status = read_status(db)
    finally:
        db.close()
    pending = sum(b.rows for b in status.backlog)
    problems = "; ".join(f"{sink}: {c}" for sink, c in status.counters.items() if c)
    delivered = _lines(config.data_path("alerts.jsonl"))
    print(f"  outbox: {pending} pending, {delivered} alert events delivered to alerts.jsonl")
    if problems:
        print(f"  outbox counters: {problems}")
    print(f"  finished at {time.strftime('%H:%M:%S')}")


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as file:
            return sum(1 for _ in file)
    except FileNotFoundError:
        return 0
