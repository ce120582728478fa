"""Broker down, SIGKILL of the agent with a backlog, restart: nothing lost, order and seq kept."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import subscriber

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]


async def _spawn(db: Path, port: int, mode: str, count: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.forward.child_agent", str(db), str(port), mode, str(count),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


async def _read_until(proc: asyncio.subprocess.Process, last: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not lines or lines[-1] != last:
            line = (await proc.stdout.readline()).decode().strip()
            assert line, "the child agent exited early"
            lines.append(line)
    return lines


async def test_sigkill_with_a_backlog_loses_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    db = tmp_path / "outbox.db"
    broker.stop()  # the link is down: every alert stays in the outbox
    child = await _spawn(db, broker.port, "put", 400)
    lines = await _read_until(child, "put 60")
    child.send_signal(signal.SIGKILL)  # while it is still putting
    await child.wait()
    committed = len(lines)  # each "put i" was printed after its commit

    broker.start()
    async with subscriber(broker.port, "edge-agent/gw1/#") as got:
        again = await _spawn(db, broker.port, "deliver", 0)
        await _read_until(again, "empty")
        await got.until(lambda g: len(g.of("alert")) >= committed)
        again.send_signal(signal.SIGKILL)
        await again.wait()
        await got.until(lambda g: [p["state"] for p in g.of("status")][-1:] == ["offline"])
    delivered = {p["event_id"] for p in got.of("alert")}
    wanted = {f"{make_alert(i, asset=f'press{i % 2}').id}:raised" for i in range(committed)}
    assert wanted <= delivered
    assert [p["state"] for p in got.of("status")] == ["online", "offline"]  # birth, then will
    first = list({p["event_id"]: p for p in got.of("alert")}.values())  # redeliveries once
    for asset in ("press0", "press1"):  # order kept per asset
        numbers = [int(p["cause"][4:]) for p in first if p["asset"] == asset]
        assert numbers == sorted(numbers)
    assert sorted(p["seq"] for p in first) == list(range(1, len(first) + 1))  # no gap
