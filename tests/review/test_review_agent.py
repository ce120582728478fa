"""Review of agent.py: what the whole agent does when a stage fails or cleanup fails."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.twin.store import SignalStore, StoreError


def _config(folder: Path, **sections: Any) -> Path:
    data = {
        "agent": {"id": "gw-review", "data_dir": str(folder / "data")},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms"},
        **sections,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _started(agent: asyncio.Task[None], outbox: Path) -> None:
    deadline = time.monotonic() + 20
    while not await asyncio.to_thread(outbox.exists):
        assert not agent.done(), agent.exception()
        assert time.monotonic() < deadline, "the agent did not start"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


async def test_locked_outbox_does_not_stop_the_agent(tmp_path: Path) -> None:
    sink = {"type": "jsonl", "name": "local", "path": "out.jsonl", "telemetry": "on",
            "telemetry_interval": "1s"}  # fmt: skip
    config = load_config(_config(tmp_path, sinks=[sink]))
    agent = asyncio.create_task(run_agent(config))
    outbox = tmp_path / "data" / "outbox.db"
    await _started(agent, outbox)
    # Another process (a backup, a CLI tool) holds the outbox's write lock for 12 s.
    other = sqlite3.connect(outbox, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        done, _ = await asyncio.wait([agent], timeout=12.0)
    finally:
        other.execute("ROLLBACK")
        other.close()
    agent.cancel()
    outcome = (await asyncio.gather(agent, return_exceptions=True))[0]
    assert not done, f"the agent stopped: {outcome!r}"


async def test_sigterm_during_startup_leaves_no_open_twin(tmp_path: Path) -> None:
    """Fine: a cancel right after the start (while the worker opens files) cleans up."""
    config = load_config(_config(tmp_path))
    agent = asyncio.create_task(run_agent(config))
    await asyncio.sleep(0)
    agent.cancel()
    await asyncio.gather(agent, return_exceptions=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    SignalStore.open(tmp_path / "data" / "twin.db", config.twin).close()


def test_config_error_is_not_a_store_error() -> None:
    """Guard: StoreError is not a ConfigError, so cli.main does not catch it (see test_cli)."""
    assert not issubclass(StoreError, ConfigError)
