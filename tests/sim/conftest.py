"""One running plant shared by the sim tests (asyncua takes about 2 s to start)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from edge_agent.sim.plant import Plant


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def plant() -> AsyncIterator[Plant]:
    """The plant in the ``normal`` scenario, probe lines every 0.2 s.

    Tests using it must run in the session loop (``loop_scope="session"``),
    where its refresh task runs.
    """
    async with Plant(scenario="normal", seed=5, probe_interval=0.2) as running:
        yield running
