"""What the agent promises about stopping and starting again (README "How it flows").

- SIGTERM flushes what the recorder still holds (a flush interval far longer than the
  run, so only the stop's own flush can put the samples in the twin).
- The watchdog is fed only while the database thread answers: a worker stuck on a hung
  disk stops the pings (systemd then restarts the agent), and they resume once it frees;
  a stop that comes with the worker's answer ends the pings (no ``wait_for`` to lose it).
- Alerts the outbox refused at a stop (``unsent-alerts.json``) are queued first at the
  next start, ahead of what that start itself raises or clears.
- A damaged ``unsent-alerts.json`` is set aside like a damaged twin: the agent runs, one
  ERROR line, no traceback, and a later spill is not blocked by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.agent import _watchdog_forever
from edge_agent.config import load_config
from edge_agent.detect.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import read_spill, write_spill
from edge_agent.notify import Notifier
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.worker import Worker
from tests.conftest import free_port
from tests.forward.factory import make_alert
from tests.test_storage_guard import Agent

pytestmark = pytest.mark.faults


def _write_config(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _plant(port: int) -> subprocess.Popen[bytes]:
    """The simulated plant's Modbus server alone, in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "sim", "--scenario", "normal", "--no-opcua",
         "--no-serial", "--modbus-port", str(port), "--status-every", "0s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _history(path: Path, config: Path, signal_name: str) -> int:
    store = SignalStore.open(path, load_config(config).twin, readonly=True)
    try:
        return len(store.history(signal_name, 0.0))
    finally:
        store.close()


def test_sigterm_writes_the_samples_no_flush_has_written_yet(tmp_path: Path) -> None:
    port = free_port()
    server = _plant(port)
    source = {
        "type": "modbus",
        "name": "pump1",
        "url": f"tcp://127.0.0.1:{port}",
        "interval": "100ms",
        "registers": [{"name": "motor_current", "address": 0, "data_type": "float32"}],
    }
    config = _write_config(tmp_path, {
        "agent": {"id": "gw", "data_dir": str(tmp_path)},
        "twin": {"flush_interval": "1h"},  # no periodic flush during the test
        "sources": [source],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    })  # fmt: skip
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
                                 env=env)  # fmt: skip
        try:
            assert sock.recv(64) == b"READY=1"
            _wait(lambda: (tmp_path / "twin.db").exists())
            time.sleep(2.0)  # about 20 polls, all still in the recorder's buffer
            before = _history(tmp_path / "twin.db", config, "pump1.motor_current")
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=15) == 0
        finally:
            agent.kill()
            server.terminate()
            server.wait(timeout=10)
    after = _history(tmp_path / "twin.db", config, "pump1.motor_current")
    assert before == 0, "a flush ran before SIGTERM: the test no longer isolates the stop's flush"
    assert after >= 5, f"SIGTERM lost the buffered samples ({after} in the twin)"


def _wait(predicate: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _drain(sock: socket.socket) -> list[bytes]:
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(sock.recv(64, socket.MSG_DONTWAIT))
    return got


async def test_watchdog_pings_only_while_the_database_thread_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    worker = Worker()
    gate = threading.Event()
    notifier = Notifier(str(path), 400_000)  # WatchdogSec=0.4s: a ping every 0.2 s
    task = asyncio.create_task(_watchdog_forever(notifier, worker))
    try:
        await _until(lambda: b"WATCHDOG=1" in _drain(sock))
        stuck = asyncio.ensure_future(worker.run(gate.wait))  # a write hung on a dead SD card
        await _until(lambda: "database thread stuck" in caplog.text)
        _drain(sock)
        await asyncio.sleep(1.5)  # several watchdog intervals
        assert _drain(sock) == [], "the watchdog was fed while the database thread hung"
        gate.set()
        await stuck
        await _until(lambda: b"WATCHDOG=1" in _drain(sock))
    finally:
        gate.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        worker.close()
        sock.close()
    assert caplog.text.count("database thread stuck") == 1  # one line per transition


class _RacingWorker:
    """Stands in for the worker: its first job ends in the loop iteration of the stop."""

    def __init__(self) -> None:
        self.jobs = 0
        self.stop: Callable[[], object] = lambda: None

    def run(self, fn: Callable[[], None]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self.jobs += 1

        def answer() -> None:
            fn()
            done.set_result(None)
            if self.jobs == 1:  # once: a second cancel still ends a failing test
                self.stop()

        loop.call_soon(answer)
        return done


class _Pings:
    """Stands in for the notifier: counts the watchdog pings."""

    watchdog_interval = 0.05

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, state: str) -> None:
        self.sent.append(state)


async def test_watchdog_stops_on_a_cancel_that_comes_with_the_worker_answer() -> None:
    """With wait_for around the job (3.11) the stop was lost and the pings went on."""
    worker, pings = _RacingWorker(), _Pings()
    task = asyncio.create_task(_watchdog_forever(pings, worker))  # type: ignore[arg-type]
    worker.stop = task.cancel
    done, _ = await asyncio.wait([task], timeout=2.0)
    task.cancel()  # a second cancel is not swallowed: the test ends either way
    await asyncio.gather(task, return_exceptions=True)
    assert done, f"the watchdog ran on after its stop ({len(pings.sent)} pings)"
    assert pings.sent == []


async def _until(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def _spill_config(folder: Path, data: Path) -> Path:
    return _write_config(folder, {
        "agent": {"id": "gw", "data_dir": str(data)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": []},
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    })  # fmt: skip


def _delivered(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_spilled_alerts_are_queued_first_at_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The last run: alert 0 open in the outbox (its rule is gone from the config, so this
    # start clears it), alerts 1 and 2 refused by the outbox at the stop and spilled.
    outbox = Outbox.open(data / "outbox.db", OutboxConfig(), ["local"])
    outbox.put_alerts([make_alert(0)], "gw")
    outbox.close()
    spilled = [make_alert(1), make_alert(2)]
    write_spill(data / "unsent-alerts.json", spilled)
    agent = Agent(_spill_config(tmp_path, data), tmp_path / "stderr.log")
    try:
        agent.wait_for("running")
        _wait(lambda: len(_delivered(data / "alerts.jsonl")) >= 4)
    finally:
        assert agent.stop() == 0
    events = [(d["id"], d["state"]) for d in _delivered(data / "alerts.jsonl")]
    ids = [a.id for a in spilled]
    spilled_at = [events.index((i, "raised")) for i in ids]
    cleared_now = events.index((make_alert(0).id, "cleared"))
    assert max(spilled_at) < cleared_now, f"spilled alerts not queued first: {events}"
    assert not (data / "unsent-alerts.json").exists()
    assert "Traceback" not in agent.text()


def test_a_damaged_spill_file_is_set_aside_and_the_agent_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "unsent-alerts.json").write_bytes(b'[{"id": "abc", "asset": \x00\xff cut short')
    agent = Agent(_spill_config(tmp_path, data), tmp_path / "stderr.log")
    try:
        agent.wait_for("running")
        time.sleep(1.0)  # still up after READY
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0
    text = agent.text()
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "unsent-alerts.json" in errors[0], text
    assert not (data / "unsent-alerts.json").exists()
    assert len(list(data.glob("unsent-alerts.json.corrupt-*"))) == 1


async def test_a_damaged_spill_file_does_not_cost_the_next_spill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    spill = tmp_path / "unsent-alerts.json"
    spill.write_text("{not json")
    worker = Worker()
    try:
        outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        await worker.run(outbox.close)  # the outbox refuses every put from now on
        loop = DetectorLoop(Detector(DetectConfig(), [], []), Windows(16), outbox, worker, "gw",
                            0.05, lambda: None)  # fmt: skip
        loop.spill = spill
        alerts = [make_alert(1), make_alert(2)]
        await loop.put(alerts)
        task = asyncio.create_task(loop.detect_forever())
        await asyncio.sleep(0.1)
        task.cancel()  # SIGTERM
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    finally:
        worker.close()
    assert isinstance(outcome, asyncio.CancelledError), f"the stop failed: {outcome!r}"
    assert [a.id for a in read_spill(spill)] == [a.id for a in alerts]
    aside = await asyncio.to_thread(lambda: list(tmp_path.glob("unsent-alerts.json.corrupt-*")))
    assert len(aside) == 1


def test_alerts_the_outbox_refuses_at_a_stop_are_delivered_after_the_next_start(
    tmp_path: Path,
) -> None:
    """End to end: another process holds the outbox's write lock while a rule raises."""
    port = free_port()
    server = _plant(port)
    data = tmp_path / "data"
    source = {
        "type": "modbus",
        "name": "pump1",
        "url": f"tcp://127.0.0.1:{port}",
        "interval": "200ms",
        "registers": [{"name": "motor_current", "address": 0, "data_type": "float32"}],
    }
    rule = {
        "name": "running",
        "type": "threshold",
        "signal": "pump1.motor_current",
        "asset": "pump1",
        "above": -1000.0,
        "for": "2s",
    }  # always true, after 2 s
    config = _write_config(tmp_path, {
        "agent": {"id": "gw", "data_dir": str(data)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": [rule]},
        "sources": [source],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    })  # fmt: skip
    try:
        first = Agent(config, tmp_path / "first.log")
        try:
            first.wait_for("running")
            lock = sqlite3.connect(data / "outbox.db", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # a backup tool, a stuck CLI
            try:
                first.wait_for("cannot store alerts", within=40)
                assert first.stop() == 0
            finally:
                lock.execute("ROLLBACK")
                lock.close()
        finally:
            first.proc.kill()
        kept = read_spill(data / "unsent-alerts.json")
        assert [a.cause for a in kept] == ["running"], first.text()
        second = Agent(config, tmp_path / "second.log")
        try:
            second.wait_for("running")
            _wait(lambda: len(_delivered(data / "alerts.jsonl")) >= 1)
        finally:
            assert second.stop() == 0
    finally:
        server.terminate()
        server.wait(timeout=10)
    delivered = _delivered(data / "alerts.jsonl")
    assert (delivered[0]["id"], delivered[0]["state"]) == (kept[0].id, "raised")
    # It is open again under its id: the condition that persists is not raised twice.
    raised = [d["id"] for d in delivered if d.get("state") == "raised"]
    assert raised == [kept[0].id], delivered
    assert "Traceback" not in first.text() + second.text()


_STUBBORN = """
import asyncio, contextlib, sys
from edge_agent import agent

agent.STOP_GRACE = 0.5


async def stubborn() -> None:
    # eats the first cancel, as pymodbus' connect can on 3.11, then keeps running
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    print("swallowed", flush=True)
    await asyncio.sleep(60)


async def main() -> None:
    async with asyncio.TaskGroup() as group:
        group.create_task(stubborn())
        print("running", flush=True)
        await asyncio.sleep(60)


agent.run_until_signalled(main())
print("stopped", flush=True)
"""


def test_a_task_that_swallowed_the_stop_is_cancelled_again(tmp_path: Path) -> None:
    """A TaskGroup already aborting passes no second cancel on: the agent sends its own.

    Found by a bench run: a poll loop that lost the stop's cancel kept the agent up
    until SIGKILL.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "running"
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
    assert out.split() == ["swallowed", "stopped"], err
    assert "cancelling again" in err
    assert child.returncode == 0
