"""A whole agent (run_agent) takes a command from mosquitto, writes, replies and audits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from tests.commands.modbus_plant import REGISTERS, modbus_plant, server_words
from tests.forward.conftest import Mosquitto


def _config(tmp_path: Path, modbus: int, broker: int) -> Path:
    data: dict[str, Any] = {
        "agent": {"id": "gw1", "data_dir": str(tmp_path / "data")},
        "sources": [{"type": "modbus", "name": "plc", "url": f"tcp://127.0.0.1:{modbus}",
                     "interval": "100ms", "registers": REGISTERS}],
        "sinks": [
            {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": broker, "tls": "off",
             "commands": "on", "backoff": "100ms"},
            {"type": "jsonl", "name": "local", "path": "audit.jsonl"},
        ],
        "writes": {"mode": "on"},
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def test_the_agent_answers_a_command_and_audits_it(
    tmp_path: Path, port: int, broker: Mosquitto
) -> None:
    async with modbus_plant(port) as (server, _trace):
        config = load_config(_config(tmp_path, port, broker.port))
        agent = asyncio.create_task(run_agent(config))
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="host") as host:
                await host.subscribe("edge-agent/gw1/#", qos=1)
                body = {"v": 1, "type": "write", "id": "e2e", "signal": "plc.sp_multi", "value": 77}
                replies, audits = [], []
                async with asyncio.timeout(30):
                    async for message in host.messages:
                        topic = str(message.topic)
                        if topic == "edge-agent/gw1/status":
                            await host.publish("edge-agent/gw1/cmd", json.dumps(body), qos=1)
                        payload = json.loads(bytes(message.payload))
                        if topic.endswith("/cmd/reply"):
                            replies.append(payload)
                        elif topic.endswith("/audit"):
                            audits.append(payload)
                        if replies and audits:
                            break
            assert await server_words(server, 3, 40, 1) == [77]
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
    assert [(r["id"], r["status"], r["read_back"]) for r in replies] == [("e2e", "done", 77.0)]
    assert audits[0]["event_id"] == "mqtt:cloud:e2e" and audits[0]["status"] == "done"
    local = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in local] == ["command"]
