"""A source's poll loop running beside the commands, as in the agent."""

from __future__ import annotations

import asyncio
from typing import Any

from edge_agent.sources.poll import PollStats, poll_forever
from edge_agent.types import Sample


async def start_polling(source: Any, seen: list[Sample], stats: PollStats) -> asyncio.Task[None]:
    """Start ``poll_forever`` and return once the first samples arrived."""
    first = asyncio.Event()

    def emit(samples: list[Sample]) -> None:
        seen.extend(samples)
        first.set()

    task = asyncio.create_task(poll_forever(source, emit, stats))
    async with asyncio.timeout(10):
        await first.wait()
    return task
