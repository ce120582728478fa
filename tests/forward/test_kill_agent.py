"""Broker down and the real agent killed with a backlog, twice (README "Promises" row 3).

tests/forward/test_kill.py kills a stand-in built from the same classes; this kills
`edge-agent run` itself: once while the broker is down, once in the middle of draining
the backlog after the broker is back, with batches sent to a broker that froze (SIGSTOP)
and then died (SIGKILL) without acknowledging them. Every event is then delivered (at
least once), in order, and `seq` has no gap.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
import yaml

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.types import AlertState
from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import Received, subscriber

pytestmark = pytest.mark.faults

ALERTS = 150
ASSETS = 3


def _config(folder: Path, port: int) -> Path:
    data = {
        "agent": {"id": "gw-kill", "data_dir": str(folder / "data")},
        "sinks": [{"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": port,
                   "tls": "off", "backoff": "100ms", "backoff_max": "300ms",
                   "batch_size": 10}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _backlog(data: Path) -> list[str]:
    """Raise and clear of each alert, in put order; their event ids."""
    outbox = Outbox.open(data / "outbox.db", OutboxConfig(), ["cloud"])
    wanted = []
    for i in range(ALERTS):
        for state in (AlertState.RAISED, AlertState.CLEARED):
            alert = make_alert(i, asset=f"press{i % ASSETS}", state=state)
            outbox.put_alerts([alert], "gw-kill")
            wanted.append(f"{alert.id}:{state}")
    outbox.close()
    return wanted


async def _agent(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent", "run", "-c", str(config),
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _kill(agent: asyncio.subprocess.Process) -> None:
    agent.send_signal(signal.SIGKILL)
    await agent.wait()


def _alerts(got: Received) -> int:
    return len(got.of("alert"))


async def test_real_agent_killed_twice_with_a_backlog_loses_nothing(
    tmp_path: Path, broker: Mosquitto
) -> None:
    (tmp_path / "data").mkdir()
    config = _config(tmp_path, broker.port)
    async with subscriber(broker.port, "edge-agent/gw-kill/#") as got:
        broker.stop()  # the link is down
        wanted = _backlog(tmp_path / "data")
        agent = await _agent(config)
        await asyncio.sleep(2.0)  # it starts, fails to connect, backs off
        await _kill(agent)
        broker.start()
        agent = await _agent(config)
        await got.until(lambda g: _alerts(g) >= 60, within=30)
        # In the middle of the drain the broker freezes: batches are sent and never
        # acknowledged. Then both die; the frozen broker never read those batches.
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(1.0)
        await _kill(agent)
        at_kill = _alerts(got)
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait(10)
        broker.proc = None
        broker.start()
        agent = await _agent(config)
        try:
            await got.until(lambda g: {p["event_id"] for p in g.of("alert")} >= set(wanted), 60)
        finally:
            agent.send_signal(signal.SIGTERM)
            await agent.wait()
    assert at_kill < len(wanted), "the backlog was drained before the kill: nothing shown"
    first = list({p["event_id"]: p for p in got.of("alert")}.values())  # redeliveries once
    assert [p["event_id"] for p in first if p["event_id"] in wanted] == wanted  # global order
    assert len(first) == len(wanted), "an event nobody put was delivered"
    assert sorted(p["seq"] for p in first) == list(range(1, len(first) + 1))  # no gap
