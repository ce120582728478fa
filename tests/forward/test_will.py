"""The MQTT sink's last will: `kill -9` of the real agent leaves a retained ``offline``.

README "Store-and-forward": "A retained `online` birth message and an `offline` last will
on `edge-agent/<gateway>/status`". test_mqtt.py shows the clean exit (the sink publishes
``offline`` itself); only an unclean end shows that the will is registered at all.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.forward.conftest import Mosquitto
from tests.forward.harness import subscriber

pytestmark = pytest.mark.faults


def _config(folder: Path, port: int) -> Path:
    data = {
        "agent": {"id": "gw-will", "data_dir": str(folder / "data")},
        "sinks": [{"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": port,
                   "tls": "off", "keepalive": "60s"}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def test_kill_9_leaves_a_retained_offline_status(tmp_path: Path, broker: Mosquitto) -> None:
    topic = "edge-agent/gw-will/status"
    config = _config(tmp_path, broker.port)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent", "run", "-c", str(config), stderr=subprocess.DEVNULL
    )
    try:
        async with subscriber(broker.port, topic) as got:
            await got.until(lambda g: len(g.of("status")) >= 1, within=30)
            assert got.of("status")[0]["state"] == "online"
            agent.send_signal(signal.SIGKILL)  # no DISCONNECT: only the will can say it
            await agent.wait()
            # A keepalive of 60 s: the broker sees the socket close, not a timeout.
            await got.until(lambda g: len(g.of("status")) >= 2, within=30)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    assert [p["state"] for p in got.of("status")] == ["online", "offline"]
    async with subscriber(broker.port, topic, client_id="late") as late:
        await late.until(lambda g: len(g.of("status")) >= 1)
    assert late.messages[0][1]["state"] == "offline"
    assert late.messages[0][2]  # retained: a dashboard that connects later sees it too
