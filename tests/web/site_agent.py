"""A running agent on the simulated plant, for the site view's API and browser tests.

``python -m tests.web.site_agent FOLDER PORT`` starts the plant's Modbus server
(pump1 registers, scenario ``normal``) and the agent with the page on
``127.0.0.1:PORT`` (token from ``$SITE_TOKEN`` when set), prints
``ready http://127.0.0.1:PORT/`` once the page answers, and runs until SIGTERM.
SIGUSR1 injects a fault: the plant's Modbus server goes offline (the source's
link drops and the ``pump1-silent`` rule raises an alert); SIGUSR2 ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sim.plant import Plant

MODEL = Path(__file__).resolve().parents[2] / "edge_agent" / "sim" / "demo_pump.onnx"
PUMP = ["motor_current", "bearing_temp", "vibration_rms", "discharge_pressure", "flow"]


def config(folder: Path, port: int, sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The agent's config: the demo's model and two rules, a JSONL sink, the page."""
    web: dict[str, Any] = {"listen": f"127.0.0.1:{port}"}
    if os.environ.get("SITE_TOKEN"):
        web["token"] = "${SITE_TOKEN}"
    return {
        "agent": {"id": "site-test", "data_dir": str(folder), "log_level": "warning"},
        "twin": {"flush_interval": "500ms"},
        "detect": {
            "interval": "1s",
            "assets": [
                {"name": "pump1", "model": str(MODEL), "signals": [f"pump1.{s}" for s in PUMP]}
            ],
            "rules": [
                {
                    "name": "pump1-silent",
                    "type": "bad_quality",
                    "signal": "pump1.motor_current",
                    "asset": "pump1",
                    "max_age": "2s",
                    "severity": "critical",
                },
                {
                    "name": "bearing-hot",
                    "type": "threshold",
                    "signal": "pump1.bearing_temp",
                    "asset": "pump1",
                    "above": 55.0,
                    "for": "3s",
                },
            ],
        },
        "sources": sources,
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
        "web": web,
    }


async def _answering(port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)


async def main(folder: Path, port: int) -> None:
    """Run plant and agent until SIGTERM; SIGUSR1/SIGUSR2 start and end the outage."""
    loop = asyncio.get_running_loop()
    async with Plant(scenario="normal", opcua=False, serial=False) as plant:
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config(folder, port, plant.source_configs("500ms"))))
        agent = asyncio.create_task(run_agent(load_config(path)))
        await asyncio.wait_for(_answering(port), 30)
        print(f"ready http://127.0.0.1:{port}/", flush=True)
        outage: list[contextlib.AbstractAsyncContextManager[None]] = []

        async def start() -> None:
            if not outage:
                outage.append(plant.modbus_outage())
                await outage[0].__aenter__()

        async def end() -> None:
            if outage:
                await outage.pop().__aexit__(None, None, None)

        loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(start()))
        loop.add_signal_handler(signal.SIGUSR2, lambda: loop.create_task(end()))
        loop.add_signal_handler(signal.SIGTERM, agent.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await agent
        await end()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
