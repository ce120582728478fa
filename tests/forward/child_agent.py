"""A stand-in agent for the SIGKILL test: puts alerts, delivers them over MQTT.

``python -m tests.forward.child_agent DB PORT put N``: puts N alerts, one
transaction each, printing ``put <i>`` after each commit, while delivering to a
broker that is down. ``... deliver 0``: delivers the backlog, prints ``empty``.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge_agent.forward.config import MqttSinkConfig, OutboxConfig
from edge_agent.forward.delivery import deliver_forever
from edge_agent.forward.mqtt import MqttSink
from edge_agent.forward.outbox import Outbox
from tests.forward.factory import make_alert


async def main(db: Path, port: int, mode: str, count: int) -> None:
    """Run the stand-in until killed."""
    outbox = Outbox.open(db, OutboxConfig(), ["cloud"])
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()

    async def run(fn: Any, *args: Any) -> Any:
        return await loop.run_in_executor(executor, fn, *args)

    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": port, "tls": "off",
         "backoff": "50ms", "backoff_max": "200ms", "batch_size": 5}
    )  # fmt: skip
    wake = asyncio.Event()
    task = asyncio.create_task(deliver_forever(outbox, MqttSink(config, "gw1"), "cloud", run, wake))
    for i in range(count):
        await run(outbox.put_alerts, [make_alert(i, asset=f"press{i % 2}")], "gw1")
        print(f"put {i}", flush=True)
        wake.set()
    while mode == "deliver" and (await run(outbox.status)).rows("cloud"):
        wake.set()
        await asyncio.sleep(0.05)
    print("empty" if mode == "deliver" else "done", flush=True)
    await task


if __name__ == "__main__":
    db, port, mode, count = sys.argv[1:5]
    asyncio.run(main(Path(db), int(port), mode, int(count)))
