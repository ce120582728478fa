"""A dead Modbus device under the whole agent: BAD at once, then rarely; alerts still fire.

While a link is down the poll loop reports the link every interval but marks the
signals BAD only at the first tick and then once per ``BAD_REPEAT`` slot of the clock
(every interval cost 29 % of a core for 10,000 tags at 100 ms). The samples are
counted as the recorder hands them on (the observer hook the live sinks use).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.types import BAD_REPEAT, AlertState, Quality, Sample
from tests.sources.modbus.server import device, start_tcp
from tests.test_agent import Seen, _until

pytestmark = pytest.mark.faults

TAGS = 20
LINK = "link.press1"


def _config(folder: Path, port: int) -> Path:
    data = {
        "agent": {"id": "gw-dead", "data_dir": str(folder)},
        "sources": [
            {"type": "modbus", "name": "press1", "url": f"tcp://127.0.0.1:{port}",
             "interval": "100ms", "asset": "press1", "timeout": "200ms", "retries": 0,
             "registers": [{"name": f"r{i}", "address": 2 * i, "data_type": "float32"}
                           for i in range(TAGS)]}
        ],
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "200ms", "source_down": "1s",
                   "rules": [{"name": "r0-bad", "type": "bad_quality",
                              "signal": "press1.r0", "for": "1s"}]},
        "sinks": [{"type": "jsonl", "name": "local", "path": str(folder / "alerts.jsonl")}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _down(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.signal == LINK and s.value == 0.0]


def _bad(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.signal != LINK and s.quality is Quality.BAD]


def _states(seen: Seen) -> list[tuple[str, AlertState]]:
    return sorted((a.cause, a.state) for a in seen.alerts)


async def test_a_dead_device_is_marked_bad_at_once_then_rarely_and_its_alerts_still_work(
    tmp_path: Path, port: int
) -> None:
    seen = Seen()
    agent = asyncio.create_task(run_agent(load_config(_config(tmp_path, port)), seen))
    peer = await start_tcp([device(1)], port)
    try:
        await _until(lambda: sum(s.signal == "press1.r0" for s in seen.samples) >= 3, 15)
        await peer.stop()
        stopped = len(seen.samples)
        # Counted, not timed: 40 ticks of the link down (about 4 s), and both alerts.
        await _until(lambda: len(_down(seen.samples[stopped:])) >= 40 and len(seen.alerts) >= 2, 30)
        outage = seen.samples[stopped:]
        assert _states(seen) == [("press1-down", AlertState.RAISED), ("r0-bad", AlertState.RAISED)]

        peer = await start_tcp([device(1)], port)
        back = len(seen.samples)
        await _until(lambda: len(seen.alerts) >= 4, 30)
        await peer.stop()  # a second outage is marked at once again
        again = len(seen.samples)
        await _until(lambda: len(_down(seen.samples[again:])) >= 3, 15)
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
        await peer.stop()
    cleared = sorted((a.cause, a.state) for a in seen.alerts[2:4])
    assert cleared == [("press1-down", AlertState.CLEARED), ("r0-bad", AlertState.CLEARED)]

    down, bad = _down(outage), _bad(outage)
    # Every signal BAD at the first tick the link is down (with it, in one batch).
    assert {s.signal for s in bad if s.ts == down[0].ts} == {f"press1.r{i}" for i in range(TAGS)}
    # Then once per BAD_REPEAT slot at most: a bounded count, however many ticks went by.
    slots = {math.floor(s.ts / BAD_REPEAT) for s in down}
    assert len(down) >= 40 and len(bad) <= TAGS * len(slots) <= 2 * TAGS
    assert any(s.signal == "press1.r0" and s.quality is Quality.GOOD for s in seen.samples[back:])
    second = _bad(seen.samples[again:])
    first_down = _down(seen.samples[again:])[0]
    assert {s.signal for s in second if s.ts == first_down.ts} == {
        f"press1.r{i}" for i in range(TAGS)
    }
