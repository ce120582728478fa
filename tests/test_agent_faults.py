"""Faults around the real agent that must not stop its data collection.

A full disk (README "The edge twin"):

"A full disk (or `max_size`) does not stop polling or detection: the twin logs it once,
keeps the latest values in memory, counts what it could not store, and logs once when
writes resume." tests/twin/test_disk_full.py shows the store alone; this runs
`edge-agent run` with its data folder on a 2 MB tmpfs (root), fills the filesystem while a
rule is on its way to raise, and checks that the alert still reaches the sink (the outbox
and the JSONL file live on another filesystem, as they may on a gateway with a separate
data card), then frees the space.

A taken web port (README "The site view"): logged once, retried, polling goes on.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port
from tests.test_stop import _plant
from tests.test_storage_guard import Agent

pytestmark = pytest.mark.faults


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root); skipped where it cannot be mounted."""
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _wait(predicate: object, within: float = 40.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _alerts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_full_disk_stops_neither_polling_nor_detection(tmp_path: Path, small_fs: Path) -> None:
    port = free_port()
    server = _plant(port)
    registers = [{"name": f"r{i}", "address": i * 2, "data_type": "float32"} for i in range(5)]
    rule = {
        "name": "late",
        "type": "threshold",
        "signal": "pump1.r0",
        "asset": "pump1",
        "above": -1000.0,
        "for": "4s",
    }  # always true: raises 4 s after it first holds
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"id": "gw", "data_dir": str(small_fs)},
        "twin": {"flush_interval": "100ms"},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "detect": {"interval": "250ms", "rules": [rule]},
        "sources": [{"type": "modbus", "name": "pump1", "url": f"tcp://127.0.0.1:{port}",
                     "interval": "100ms", "registers": registers}],
        "sinks": [{"type": "jsonl", "name": "local", "path": str(tmp_path / "alerts.jsonl")}],
    }))  # fmt: skip
    filler = small_fs / "filler"
    agent = Agent(config, tmp_path / "stderr.log")
    try:
        agent.wait_for("running")
        with filler.open("wb") as handle, pytest.raises(OSError):  # ENOSPC: the disk is full
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        agent.wait_for("full")  # the twin says so, once
        _wait(lambda: any(a["state"] == "raised" for a in _alerts(tmp_path / "alerts.jsonl")))
        filler.unlink()
        agent.wait_for("writing again")
        assert agent.proc.poll() is None
    finally:
        code = agent.stop()
        server.terminate()
        server.wait(timeout=10)
    text = agent.text()
    assert code == 0, text
    assert "Traceback" not in text
    full = [line for line in text.splitlines() if "full" in line and "twin" in line]
    assert len(full) == 1, text  # logged once, not once per flush


def test_a_taken_web_port_stops_no_data_collection(tmp_path: Path) -> None:
    """README "The site view": "If the port is taken, the agent logs it once and keeps
    retrying; data collection goes on" (tests/web/test_server.py shows the server alone)."""
    import socket

    from edge_agent.config import load_config
    from edge_agent.twin.store import SignalStore

    port, web = free_port(), free_port()
    server = _plant(port)
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"id": "gw", "data_dir": str(tmp_path / "data")},
        "twin": {"flush_interval": "100ms"},
        "web": {"listen": f"127.0.0.1:{web}"},
        "sources": [{"type": "modbus", "name": "pump1", "url": f"tcp://127.0.0.1:{port}",
                     "interval": "100ms",
                     "registers": [{"name": "r0", "address": 0, "data_type": "float32"}]}],
    }))  # fmt: skip
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", web))
    holder.listen()  # another service already has the page's port
    agent = Agent(config, tmp_path / "stderr.log")

    def stored() -> int:
        store = SignalStore.open(tmp_path / "data" / "twin.db", load_config(config).twin,
                                 readonly=True)  # fmt: skip
        try:
            return len(store.history("pump1.r0", 0.0))
        finally:
            store.close()

    try:
        agent.wait_for("cannot listen")
        _wait(lambda: (tmp_path / "data" / "twin.db").exists() and stored() >= 20)
        holder.close()
        agent.wait_for("web: serving")
    finally:
        holder.close()
        code = agent.stop()
        server.terminate()
        server.wait(timeout=10)
    text = agent.text()
    assert code == 0 and "Traceback" not in text, text
    assert text.count("cannot listen") == 1, text  # once, not once per retry
