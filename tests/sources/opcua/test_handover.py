"""What arrived before a session is lost is handed over (README, OPC UA promises table).

"notifications that arrived before a session is lost are handed to the poll loop before
the session is torn down". In test_faults.py the loss always finds the inbox empty (a
mutation that discards it at the loss passes every case there): its ticks are short.
Here a tick is 4 s and the server is killed in the middle of one, with a couple of
seconds of notifications waiting; the server stays dead, so they can only come from
what was received before the kill.
"""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.sources.poll import poll_forever
from tests.sources.opcua.test_faults import (
    EARLY,
    Agent,
    Plant,
    check_books,
    config,
    plant,
    serving,
)

__all__ = ["plant"]  # the fixture, shared with test_faults.py

pytestmark = pytest.mark.faults


async def test_notifications_waiting_at_a_kill_are_handed_over(plant: Plant) -> None:
    source = OpcuaSource(config(plant.url).model_copy(update={"interval": 4.0}))
    agent = Agent(source)
    async with serving(plant):
        task = asyncio.create_task(poll_forever(agent.source, agent.take, agent.stats))
        try:
            await agent.wait(lambda: len(agent.counter()) >= 1, limit=30)
            ticked = len(agent.got)
            await agent.wait(lambda: len(agent.got) > ticked, limit=10)  # a tick just ran
            await asyncio.sleep(2.0)  # half a tick of notifications waits in the inbox
            await plant.kill()
            fault = plant.written()[-1]
            last_tick = agent.counter()[-1]
            # Published before the kill (at least EARLY values back): they must come.
            await agent.wait(lambda: agent.counter()[-1] >= fault - EARLY, limit=15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert fault - EARLY > last_tick + 5, "nothing was waiting: the test shows nothing"
    got = set(agent.counter())
    missing = [v for v in range(agent.counter()[0], fault - EARLY + 1) if v not in got]
    assert not missing, missing
    check_books(agent)
