"""Run the whole agent as ``edge-agent run`` does and print which config models it built.

Run by ``tests/test_config_fork.py`` in a fresh interpreter (a test process has
built validators already). The agent reads the simulated pump (Modbus on
loopback) with the demo model and a rule, serves the site view, reloads once on
SIGHUP (a rule added), and stops. Printed on the last line: a JSON object whose ``built``
lists the config models whose validator or serializer was built, which should be
empty (``StrictModel``'s ``defer_build``; ``config_fork.py``), the modules the first
``/metrics`` scrape imported (none: the agent writes the text itself,
``exposition.py``) and whether prometheus_client was ever imported (it should not
be), whether the page's files were read (``importlib.resources``) before and after
the first page request, and whether numpy.ma was ever imported (it should not be:
``np.unique`` imports it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from edge_agent.agent import run_agent
from edge_agent.config_fork import load_config_forked
from edge_agent.secret_files import check_secret_files
from edge_agent.sim.plant import Plant

MODEL = Path(__file__).resolve().parent.parent / "edge_agent" / "sim" / "demo_pump.onnx"
PUMP = ["motor_current", "bearing_temp", "vibration_rms", "discharge_pressure", "flow"]


def config(folder: Path, sources: list[dict[str, Any]], port: int) -> dict[str, Any]:
    """The demo's shape: one asset with the model, one rule, a JSONL sink, the site view."""
    asset = {"name": "pump1", "model": str(MODEL), "signals": [f"pump1.{s}" for s in PUMP]}
    rule = {"name": "bearing-hot", "type": "threshold", "signal": "pump1.bearing_temp",
            "above": 55.0, "for": "1s"}  # fmt: skip
    return {
        "agent": {"id": "gw-lean", "data_dir": str(folder)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "assets": [asset], "rules": [rule]},
        "sources": sources,
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
        "web": {"listen": f"127.0.0.1:{port}"},
    }


class Said(logging.Handler):
    """The agent's log lines, kept."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return bytes(reply.read())


async def answered(url: str, agent: asyncio.Task[None]) -> None:
    """Wait until ``url`` answers (asked from a thread: the server runs on this loop)."""
    deadline = time.monotonic() + 30
    while not agent.done() and time.monotonic() < deadline:
        try:
            await asyncio.to_thread(get, url)
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


async def until(predicate: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def exercise(folder: Path, port: int) -> None:
    path = folder / "agent.yaml"
    async with Plant(scenario="demo", opcua=False, serial=False, speed=4.0) as plant:
        data = config(folder, plant.source_configs("250ms"), port)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        loaded = load_config_forked(path)
        check_secret_files(loaded, path)
        said = Said()
        logging.getLogger("edge_agent").addHandler(said)
        logging.getLogger("edge_agent").setLevel(logging.INFO)
        agent = asyncio.create_task(run_agent(loaded))
        base = f"http://127.0.0.1:{port}"
        try:  # the site view answers once the agent runs (and takes SIGHUP)
            await answered(base + "/api/v1/status", agent)
            for page in ("/api/v1/status", "/api/v1/config", "/api/v1/assets"):
                await asyncio.to_thread(get, base + page)
            before = set(sys.modules)
            await asyncio.to_thread(get, base + "/metrics")
            SEEN["loaded by a scrape"] = sorted(set(sys.modules) - before)
            SEEN["page files read before the page"] = "importlib.resources" in sys.modules
            await asyncio.to_thread(get, base + "/")
            SEEN["page files read after the page"] = "importlib.resources" in sys.modules
            data["detect"]["rules"].append({**data["detect"]["rules"][0], "name": "second"})
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: any("reloaded:" in x for x in said.lines) or agent.done(), 30)
            assert not agent.done(), agent
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)


SEEN: dict[str, Any] = {}
"""The modules the first /metrics scrape imported, and whether the page's files
(importlib.resources) were read before and after the first page request."""


def built() -> list[str]:
    """Config models (and any other pydantic model) with a validator or serializer built."""
    seen: set[type[BaseModel]] = set()
    todo = [BaseModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return sorted(m.__qualname__ for m in seen if m.__pydantic_complete__)


def main() -> None:
    folder, port = Path(sys.argv[1]), int(sys.argv[2])
    asyncio.run(exercise(folder, port))
    modules = {name: name in sys.modules for name in ("numpy.ma", "prometheus_client")}
    print(json.dumps({"built": built(), **SEEN, **modules}))


if __name__ == "__main__":
    main()
