"""Fault matrix: a Modbus line of 10 units with 1-3 dead ones, under the real poll loop.

A dead unit here is a device the server never answers for, as on an RS-485
line whose meter lost power. (pymodbus 3.16.1's ``ignore_missing_devices``
does not silence an id without a device under the new simulator: its SimCore
raises KeyError and the server answers exception 4, so the dead units are
silenced devices instead.) Over ``RUN`` seconds at a 1 s
interval, every signal of a unit that answers must get at least 95 % of its
samples, GOOD and with its own unit's values (no reply taken for another's);
the dead units' signals read BAD; each dead unit is tried at most once per
backoff period (1 s doubling, jitter down to half); one log line per
transition and no traceback. The same on TCP, RTU and ASCII (a socat pty pair),
and RTU and ASCII over TCP, with the default timeout and with one whose worst
case nearly fills a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus import FramerType

from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.poll import PollStats, poll_forever
from edge_agent.types import Quality, Sample
from tests.sources.modbus.server import Peer, Silence, device, pty_pair, start_rtu, start_tcp

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]

UNITS = range(1, 11)
RUN = 20.0  # seconds of polling at a 1 s interval: 20 samples due per signal
# tries at a dead unit in RUN seconds: the first, then after backoffs of at
# least 0.5, 1, 2, 4, 8 s (each drawn in [d/2, d] of 1, 2, 4, 8, 16 s)
MOST_TRIES = 6


FRAMERS = {
    "tcp": FramerType.SOCKET,
    "rtu": FramerType.RTU,
    "rtu+tcp": FramerType.RTU,
    "ascii": FramerType.ASCII,
    "ascii+tcp": FramerType.ASCII,
}


def registers() -> list[dict[str, Any]]:
    """Two signals per unit, in two tables: two requests per unit and tick."""
    return [
        reg
        for u in UNITS
        for reg in (
            {"name": f"u{u}_h", "address": 0, "device_id": u},
            {"name": f"u{u}_i", "table": "input", "address": 5, "device_id": u},
        )
    ]


def source(url: str, **extra: Any) -> ModbusSource:
    raw = {"type": "modbus", "name": "line", "url": url, "interval": "1s"}
    serial = {"serial": {"baud": 19200, "stop_bits": 2}}  # a pty refuses parity
    raw |= (serial if url.startswith(("rtu", "ascii")) else {}) | extra
    return ModbusSource(ModbusSourceConfig.model_validate({**raw, "registers": registers()}))


async def fill(peer: Peer, alive: list[int]) -> None:
    """Give each unit values of its own, so a reply taken for another unit shows."""
    for unit in alive:
        await peer.set(unit, "holding", 0, [100 + unit])
        await peer.set(unit, "input", 5, [200 + unit])


@contextlib.asynccontextmanager
async def line(
    kind: str, dead: set[int], tmp_path: Path, port: int, retries: int
) -> AsyncIterator[str]:
    """A server with ``UNITS``, the ``dead`` ones silent; yields the source's URL."""
    alive = [u for u in UNITS if u not in dead]
    silence = Silence()
    devices = [device(u, silence=silence if u in dead else None) for u in UNITS]
    with contextlib.ExitStack() as stack:
        framer = FRAMERS[kind]
        if kind in ("rtu", "ascii"):
            server_tty, client_tty = stack.enter_context(pty_pair(tmp_path))
            peer = await start_rtu(devices, server_tty, silence, framer)
            url = f"{kind}://{client_tty}"
        else:
            peer = await start_tcp(devices, port, framer, silence)
            url = f"{kind}://127.0.0.1:{port}"
        try:
            await fill(peer, alive)
            yield url
            _check_tries(peer, dead, retries)
        finally:
            await peer.stop()


def _check_tries(peer: Peer, dead: set[int], retries: int) -> None:
    sent = Counter(unit for unit, *_ in peer.wire.requests if unit in dead)
    assert set(sent) == dead, f"dead units never tried: {dead - set(sent)}"
    most = MOST_TRIES * (retries + 1)  # a try is 1 + retries requests on the wire
    assert max(sent.values()) <= most, f"dead units tried more than backoff allows: {sent}"


async def poll(src: ModbusSource, seconds: float) -> tuple[list[Sample], PollStats]:
    """Run the agent's poll loop on ``src`` for ``seconds``."""
    got: list[Sample] = []
    stats = PollStats()
    task = asyncio.create_task(poll_forever(src, got.extend, stats))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return got, stats


def check(samples: list[Sample], dead: set[int], caplog: pytest.LogCaptureFixture) -> None:
    due = RUN  # one tick a second
    for unit in UNITS:
        for name, value in ((f"line.u{unit}_h", 100 + unit), (f"line.u{unit}_i", 200 + unit)):
            mine = [s for s in samples if s.signal == name]
            if unit in dead:
                assert mine and all(s.quality is Quality.BAD for s in mine), name
                continue
            good = [s for s in mine if s.quality is Quality.GOOD]
            assert len(good) >= 0.95 * due, f"{name}: {len(good)} of {due:.0f} samples"
            assert all(s.value == value for s in good), f"{name}: another unit's value"
    ours = [r for r in caplog.records if r.name.startswith("edge_agent")]
    loud = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(loud) == len(dead), f"not one line per transition: {loud}"
    assert all(any(f"unit {u} not answering" in line for line in loud) for u in dead), loud
    assert not any(r.exc_info for r in ours), "a traceback was logged"


CASES = [
    pytest.param("tcp", {2, 5, 9}, {}, id="tcp-3-dead-default-timeout"),
    pytest.param("rtu", {3, 4, 10}, {}, id="rtu-3-dead-default-timeout"),
    # worst case 0.8 s of a 1 s tick: two tries at silent units never share a
    # tick (without the tick budget, the first tick alone would cost 2.4 s)
    pytest.param(
        "rtu+tcp", {8, 9, 10}, {"timeout": "400ms", "retries": 1}, id="rtu+tcp-3-dead-long"
    ),
    # the default timeout at 19200 8N2 is 0.4 s (ASCII's frames take twice RTU's):
    # three dead units' first tries do not fit in one tick. The dead units come last:
    # at start no unit has answered yet, so the units are tried in id order and each
    # dead one ahead of a live one costs it a tick (with {1, 6, 7}: 18 of 20 under
    # load in CI; README "Modbus" says so)
    pytest.param("ascii", {8, 9, 10}, {}, id="ascii-3-dead-default-timeout"),
    pytest.param(
        "ascii+tcp", {8, 9, 10}, {"timeout": "400ms", "retries": 1}, id="ascii+tcp-3-dead-long"
    ),
]


@pytest.mark.parametrize(("kind", "dead", "timing"), CASES)
async def test_dead_units_do_not_cost_the_others_their_samples(
    kind: str,
    dead: set[int],
    timing: dict[str, Any],
    tmp_path: Path,
    port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with line(kind, dead, tmp_path, port, timing.get("retries", 0)) as url:
        samples, stats = await poll(source(url, **timing), RUN)
    check(samples, dead, caplog)
    assert stats.outages == 0, "the link was dropped although most units answer"
