"""OPC UA fault matrix: server killed, network blackhole, session timeout, node deleted.

Each case runs the real poll loop (``poll_forever``) against an asyncua server in a
process of its own, which writes a counter every 100 ms and records what it wrote.
Each asserts: data again within two backoff periods of the peer's return, every
value the agent received recorded (the source's books balance: what asyncua
received reached the inbox, and what left the inbox was returned or dropped as a
repeat), no value recorded twice, values missing only around the fault, no
traceback in the logs and a bounded number of log lines.

The blackhole lasts ``EDGE_AGENT_BLACKHOLE_S`` seconds (15 by default, for CI);
the 60 s run is done by hand with ``EDGE_AGENT_BLACKHOLE_S=60`` (see README).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.sources.poll import PollStats, poll_forever
from edge_agent.types import Quality, Sample
from tests.conftest import free_port

pytestmark = pytest.mark.faults

BLACKHOLE_S = float(os.environ.get("EDGE_AGENT_BLACKHOLE_S", "15"))
BACKOFF, BACKOFF_MAX, TIMEOUT = 0.5, 2.0, 1.0
RETURN_BOUND = 2 * BACKOFF_MAX + TIMEOUT  # two backoff periods, and one connect
EARLY = 5  # values the server may have written but not yet published at a fault (0.5 s)
ROOT = Path(__file__).resolve().parents[3]


class Plant:
    """The server process: started, killed, restarted on the same port, commanded."""

    def __init__(self, port: int, values: Path) -> None:
        self.port = port
        self.values = values
        self.url = f"opc.tcp://127.0.0.1:{port}/faults"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        start = (self.written() or [0])[-1] + 1  # a restart goes on counting
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.sources.opcua.fault_server",
            str(self.port),
            str(start),
            str(self.values),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert await self._line() == "ready"

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode().strip()

    async def command(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        assert await self._line() == f"done {line}"

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        self.proc = None

    def written(self) -> list[int]:
        if not self.values.exists():
            return []
        return [int(line) for line in self.values.read_text().split()]


class Blackhole:
    """A TCP relay that can stop forwarding without closing anything, like a dead link.

    While stopped, bytes and closes wait (TCP retransmits them when a real link
    comes back) and new connections are accepted but hear nothing.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        except asyncio.CancelledError:
            # Ended by close(): end normally. asyncio (3.11) logs "Exception in callback"
            # with a traceback for a connection handler task that ends cancelled, and
            # check_logs would take the relay's own noise for the agent's.
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
            await self.flowing.wait()
        finally:
            writer.close()


@dataclass
class Agent:
    """The poll loop of one OPC UA source, recording into a list as the twin would."""

    source: OpcuaSource
    got: list[Sample] = field(default_factory=list)
    stats: PollStats = field(default_factory=PollStats)
    marked: int = 0

    def take(self, batch: list[Sample]) -> None:
        """The poll loop's emit: the source's own samples only.

        The poll loop adds its link signal to each batch and, while the link is down,
        emits batches marking every signal BAD (link 0): those are not the source's.
        """
        if any(s.signal == "link.f" and s.value == 0.0 for s in batch):
            self.marked += 1
            return
        self.got.extend(s for s in batch if s.signal != "link.f")

    def counter(self, signal: str = "f.counter") -> list[int]:
        return [int(s.value or 0) for s in self.got if s.signal == signal and s.value is not None]

    async def wait(self, ready: Callable[[], bool], limit: float = 20.0) -> float:
        """Seconds until ``ready()`` holds (fails after ``limit``)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while not ready():
            assert loop.time() - start < limit, "timed out"
            await asyncio.sleep(0.05)
        return loop.time() - start


def config(url: str) -> OpcuaSourceConfig:
    nodes = [{"name": "counter", "node": "ns=2;s=Counter"}, {"name": "gone", "node": "ns=2;s=Gone"}]
    return OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "f",
            "url": url,
            "interval": "500ms",  # longer than publishing: a fault finds notifications waiting
            "timeout": f"{TIMEOUT}s",
            "backoff": f"{BACKOFF}s",
            "backoff_max": f"{BACKOFF_MAX}s",
            "groups": [{"mode": "subscribe", "publishing_interval": "200ms", "nodes": nodes}],
        }
    )


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    """A server process, not started yet (``serving`` starts and kills it)."""
    return Plant(free_port(), tmp_path / "written.txt")


@contextlib.asynccontextmanager
async def serving(plant: Plant) -> AsyncIterator[Plant]:
    await plant.start()
    try:
        yield plant
    finally:
        await plant.kill()


@contextlib.asynccontextmanager
async def running(url: str) -> AsyncIterator[Agent]:
    agent = Agent(OpcuaSource(config(url)))
    task = asyncio.create_task(poll_forever(agent.source, agent.take, agent.stats))
    try:
        await agent.wait(lambda: len(agent.counter()) >= 5)
        yield agent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settle(agent: Agent, plant: Plant) -> list[int]:
    """Wait until the agent has a value written after this call; the values written."""
    mark = plant.written()[-1] + 3
    await agent.wait(lambda: bool(agent.counter()) and agent.counter()[-1] >= mark)
    return plant.written()


def check_books(agent: Agent) -> None:
    books = agent.source.books()
    assert books["arrived"] == books["taken"], books
    out = len(agent.got) + books["repeats"] + books["lost"] + books["pending"]
    assert books["received"] + books["made"] == out, books
    assert books["lost"] == 0


def check_values(recorded: list[int], written: list[int], fault: int) -> None:
    """No repeats; every value written is recorded except between ``fault - EARLY`` and
    the first value received after the fault (a server does not replay the past)."""
    assert recorded == sorted(set(recorded)), "a value was recorded twice or out of order"
    assert set(recorded) <= set(written)
    back = min((v for v in recorded if v > fault), default=recorded[-1])
    seen = set(recorded)
    missing = [v for v in written if recorded[0] <= v <= recorded[-1] and v not in seen]
    assert all(fault - EARLY <= v < back for v in missing), (missing, fault, back)


def check_logs(caplog: pytest.LogCaptureFixture, most: int) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("edge_agent")]
    noisy = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]
    assert len(lines) <= most, lines
    return lines


@pytest.fixture(autouse=True)
def _quiet_asyncua(caplog: pytest.LogCaptureFixture) -> None:
    # As `edge-agent run` sets it: asyncua's INFO chatter is not ours to bound.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    caplog.set_level(logging.INFO, logger="edge_agent")


async def test_server_killed_and_restarted(plant: Plant, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(plant), running(plant.url) as agent:
        await plant.kill()
        fault = plant.written()[-1]
        await asyncio.sleep(3 * BACKOFF_MAX)  # long enough for the backoff to reach its cap
        await plant.start()
        back = plant.written()[-1] + 1
        took = await agent.wait(lambda: agent.counter()[-1] >= back)
        written = await settle(agent, plant)
    assert took <= RETURN_BOUND
    check_values(agent.counter(), written, fault)
    check_books(agent)
    lines = check_logs(caplog, 4)
    assert any("connection lost" in line for line in lines)
    assert any("reconnected after" in line for line in lines)


@pytest.mark.parametrize("seconds", [BLACKHOLE_S])
async def test_network_blackhole(
    plant: Plant, seconds: float, caplog: pytest.LogCaptureFixture
) -> None:
    relay = Blackhole(plant.port)
    await relay.start()
    try:
        async with serving(plant), running(f"opc.tcp://127.0.0.1:{relay.port}/faults") as agent:
            relay.flowing.clear()
            fault = plant.written()[-1]
            await asyncio.sleep(seconds)
            relay.flowing.set()
            back = plant.written()[-1] + 1
            took = await agent.wait(lambda: agent.counter()[-1] >= back)
            written = await settle(agent, plant)
    finally:
        await relay.close()
    assert took <= RETURN_BOUND
    check_values(agent.counter(), written, fault)
    check_books(agent)
    lines = check_logs(caplog, 4)
    assert any("no answer from the server" in line for line in lines), lines
    assert not any("BadShutdown" in line for line in lines), lines


async def test_session_timeout(plant: Plant, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(plant), running(plant.url) as agent:
        fault = plant.written()[-1]
        await plant.command("close-sessions")
        took = await agent.wait(lambda: agent.stats.outages == 1 and agent.stats.connected)
        back = plant.written()[-1] + 1
        await agent.wait(lambda: agent.counter()[-1] >= back)
        written = await settle(agent, plant)
    assert took <= RETURN_BOUND + TIMEOUT  # the loss is seen at the next keep-alive probe
    check_values(agent.counter(), written, fault)
    check_books(agent)
    lines = check_logs(caplog, 4)
    assert any("session lost" in line for line in lines), lines


async def test_node_deleted_then_back(plant: Plant, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(plant), running(plant.url) as agent:
        await plant.command("delete")
        await agent.wait(lambda: "f.gone" in agent.source.problems())
        gone = [s for s in agent.got if s.signal == "f.gone"][-1]
        problems = agent.source.problems()
        await asyncio.sleep(2 * BACKOFF_MAX)  # retries find it still missing: no new lines
        await plant.command("add")
        back = plant.written()[-1] + 1
        took = await agent.wait(lambda: max(agent.counter("f.gone"), default=0) >= back)
        written = await settle(agent, plant)
    assert took <= RETURN_BOUND
    assert gone.quality is Quality.BAD
    assert problems == {"f.gone": "ns=2;s=Gone: BadNodeIdUnknown"}
    assert agent.source.problems() == {}
    check_values(agent.counter(), written, 0)  # the other node lost nothing at all
    check_books(agent)
    lines = check_logs(caplog, 3)
    assert [line for line in lines if "cannot be read" in line] == [
        "f.gone: node ns=2;s=Gone cannot be read: BadNodeIdUnknown "
        "(The node id refers to a node that does not exist in the server address space.); "
        "recorded as BAD"
    ]
    assert agent.stats.outages == 0
