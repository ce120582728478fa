"""Review of sources/poll.py: a link that connects but fails at once (flapping)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Self

import pytest

from edge_agent.errors import SourceError
from edge_agent.sources.poll import PollStats, poll_forever
from edge_agent.types import Sample, SignalInfo


@dataclass(frozen=True)
class _Config:
    name: str
    interval: float


class AcceptsThenDrops:
    """A Modbus gateway at its connection limit: TCP connect works, every request is reset."""

    def __init__(self) -> None:
        self.config = _Config("gw", 0.01)
        self.connects = 0

    def signals(self) -> list[SignalInfo]:
        return [SignalInfo("gw.x", "gw", 0.01)]

    async def __aenter__(self) -> Self:
        self.connects += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def read(self) -> list[Sample]:
        raise SourceError("connection reset by peer")


async def test_flapping_link_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sources.poll")
    source = AcceptsThenDrops()
    task = asyncio.create_task(poll_forever(source, lambda s: None, PollStats(), cap=0.02))
    while source.connects < 6:  # noqa: ASYNC110 - a plain counter, no event to await
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("connection lost" in m for m in messages) == 1, messages
    assert not any("reconnected" in m for m in messages), messages


async def _accept_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)  # the first request arrives: reset the connection
    writer.transport.abort()


async def test_modbus_peer_that_resets_every_request(caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.registry import build_source
    from edge_agent.sources.modbus.config import ModbusSourceConfig

    caplog.set_level(logging.INFO, logger="edge_agent.sources.poll")
    server = await asyncio.start_server(_accept_then_reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = ModbusSourceConfig.model_validate(
        {"type": "modbus", "name": "m", "url": f"tcp://127.0.0.1:{port}", "timeout": "500ms",
         "registers": [{"name": "x", "address": 0}]}
    )  # fmt: skip
    task = asyncio.create_task(poll_forever(build_source(config), lambda s: None, PollStats()))
    await asyncio.sleep(5.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    server.close()
    await server.wait_closed()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("connection lost" in m for m in messages) == 1, messages
