"""Commands through mosquitto: MQTT JSON on the mqtt sink, NCMD / DCMD on the sparkplug sink."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from edge_agent.commands.executor import Executor
from edge_agent.commands.policy import Reply
from edge_agent.forward.config import MqttSinkConfig
from edge_agent.forward.mqtt import MqttSink
from edge_agent.forward.sparkplug import SparkplugSink
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.poll import PollStats
from edge_agent.types import Quality, Sample, SignalInfo
from tests.commands.modbus_plant import WRITES_ON, modbus_plant, plant_config
from tests.commands.polling import start_polling
from tests.forward.conftest import Mosquitto
from tests.forward.sparkplug_host import Host, sparkplug_host


class Audit:
    def __init__(self) -> None:
        self.replies: list[Reply] = []

    async def __call__(self, reply: Reply) -> None:
        self.replies.append(reply)


@asynccontextmanager
async def polled_plant(port: int, seen: list[Sample]) -> AsyncIterator[ModbusSource]:
    """The Modbus plant, polled by a source every 50 ms."""
    async with modbus_plant(port) as _:
        source = ModbusSource(plant_config(port))
        task = await start_polling(source, seen, PollStats())
        try:
            yield source
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _executor(source: ModbusSource, audit: Audit) -> Executor:
    return Executor(WRITES_ON, [source], {i.signal for i in source.signals()}, audit)


async def test_mqtt_json_commands_each_get_exactly_one_reply(broker: Mosquitto, port: int) -> None:
    seen: list[Sample] = []
    async with polled_plant(port, seen) as source:
        audit = Audit()
        config = MqttSinkConfig.model_validate(
            {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": broker.port,
             "tls": "off", "commands": "on"}
        )  # fmt: skip
        sink = MqttSink(config, gateway="gw1")
        sink.commands = _executor(source, audit)
        payloads: list[bytes] = []
        for i in range(200):
            signal, value = [("plc.sp_multi", i), ("plc.sp_u16", 600), ("plc.temp", 1),
                             ("plc.run", i % 2 == 0)][i % 4]  # fmt: skip
            payloads.append(json.dumps({"v": 1, "type": "write", "id": f"m{i}",
                                        "signal": signal, "value": value}).encode())  # fmt: skip
        payloads += [b"not json", b'{"v": 1, "type": "write", "id": "bad", "value": 1}']
        replies: list[dict[str, Any]] = []
        async with sink, aiomqtt.Client("127.0.0.1", broker.port, identifier="host") as host:
            await host.subscribe("edge-agent/gw1/cmd/reply", qos=1)
            for body in payloads:
                await host.publish("edge-agent/gw1/cmd", body, qos=1)
            async with asyncio.timeout(30):
                async for message in host.messages:
                    replies.append(json.loads(bytes(message.payload)))
                    if len(replies) == len(payloads):
                        break
    ids = Counter(r["id"] for r in replies)
    assert all(ids[f"m{i}"] == 1 for i in range(200)) and ids["bad"] == 1 and ids[None] == 1
    by_id = {r["id"]: r for r in replies}
    # sp_u16 600 is out of range and temp not writable: refused. sp_multi and run are
    # written (rate limit 0), unless a write to the same signal is still running.
    writable = [by_id[f"m{i}"] for i in range(200) if i % 4 in (0, 3)]
    busy = [r for r in writable if r["status"] == "refused"]
    assert all("still in progress" in r["reason"] for r in busy)
    done = [r for r in writable if r["status"] == "done"]
    assert len(done) + len(busy) == 100 and len(done) >= 10
    assert all(r["read_back"] == float(r["value"]) for r in done)
    assert "outside the allowed range" in by_id["m1"]["reason"]
    assert by_id["bad"]["status"] == "refused" and "signal" in by_id["bad"]["reason"]
    assert len(audit.replies) == 202


def _spark(port: int, tmp_path: Path) -> SparkplugSinkConfig:
    return SparkplugSinkConfig.model_validate(
        {"type": "sparkplug", "name": "spark", "servers": [f"127.0.0.1:{port}"], "tls": "off",
         "group_id": "plant", "timeout": "2s", "data_interval": "0ms", "commands": "on",
         "state_file": str(tmp_path / "bdseq.json")}
    )  # fmt: skip


def _answers(host: Host) -> list[Any]:
    return [m for m in host.of("DDATA", "NDATA") if any(
        x.get("name") == "Command/Status" for x in m.payload["metrics"])]  # fmt: skip


async def test_sparkplug_dcmd_writes_and_answers(
    broker: Mosquitto, port: int, tmp_path: Path
) -> None:
    seen: list[Sample] = []
    async with polled_plant(port, seen) as source, sparkplug_host(broker.port) as host:
        audit = Audit()
        sink = SparkplugSink(_spark(broker.port, tmp_path), gateway="gw1")
        sink.describe(source.signals())
        sink.commands = _executor(source, audit)
        async with sink:
            await host.until(lambda h: len(h.of("DBIRTH")) >= 1)
            birth = host.of("DBIRTH")[0]
            assert birth.device == "plc" and birth.metric("Command/Status").get("is_null")
            assert host.of("NBIRTH")[0].metric("Command/Status").get("is_null")
            now = int(time.time() * 1000)
            dcmd = "spBv1.0/plant/DCMD/gw1/plc"
            await host.write(dcmd, {"plc/sp_multi": 321.0}, now)
            await host.write(dcmd, {"plc/sp_u16": 999.0}, now)
            await host.write(dcmd, {"plc/run": True}, now)
            await host.write(dcmd, {"plc/nope": 1.0}, now)
            await host.write("spBv1.0/plant/NCMD/gw1", {"plc/sp_multi": 5.0}, now)
            await host.until(lambda h: len(_answers(h)) >= 5)
    answers = {m.metric("Command/Metric")["value"]: m for m in _answers(host) if m.kind == "DDATA"}
    done = answers["plc/sp_multi"]
    assert done.kind == "DDATA" and done.device == "plc"
    assert done.metric("Command/Status")["value"] == "done"
    assert done.metric("plc/sp_multi")["value"] == 321.0
    assert answers["plc/run"].metric("Command/Status")["value"] == "done"
    refused = answers["plc/sp_u16"].metric("Command/Reason")["value"]
    assert "outside the allowed range" in refused
    assert answers["plc/nope"].metric("Command/Status")["value"] == "refused"
    node = [m for m in _answers(host) if m.kind == "NDATA"]
    assert len(node) == 1 and "born on the node" in node[0].metric("Command/Reason")["value"]
    assert len(audit.replies) == 5


async def test_sparkplug_dcmd_to_a_dead_device_is_answered_on_the_node(
    broker: Mosquitto, port: int, tmp_path: Path
) -> None:
    """After the device's DDEATH a DDATA would contradict it: the answer's ``Command/*``
    go out as NDATA (the NBIRTH carries them); the signal's metric is not born there."""
    seen: list[Sample] = []
    async with polled_plant(port, seen) as source, sparkplug_host(broker.port) as host:
        sink = SparkplugSink(_spark(broker.port, tmp_path), gateway="gw1")
        sink.describe([*source.signals(), SignalInfo("link.plc", "link", 0.05, asset="plc")])
        sink.commands = _executor(source, Audit())
        async with sink:
            await host.until(lambda h: len(h.of("DBIRTH")) >= 1)
            sink.on_samples([Sample("link.plc", time.time(), 0.0, Quality.GOOD)])  # link lost
            await host.until(lambda h: len(h.of("DDEATH")) == 1)
            dcmd = "spBv1.0/plant/DCMD/gw1/plc"
            await host.write(dcmd, {"plc/sp_u16": 999.0}, int(time.time() * 1000))
            await host.until(lambda h: len(_answers(h)) >= 1)
    (answer,) = _answers(host)
    assert answer.kind == "NDATA" and answer.metric("Command/Metric")["value"] == "plc/sp_u16"
    assert "plc/sp_u16" not in {m["name"] for m in answer.payload["metrics"]}
    death = host.messages.index(host.of("DDEATH")[0])
    assert not [m for m in host.messages[death:] if m.kind == "DDATA"]
