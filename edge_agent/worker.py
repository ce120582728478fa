"""The single worker thread that runs everything blocking: SQLite and inference.

Everything blocking (SQLite, inference) runs on the agent's single worker thread
(:class:`Worker`), so the twin, the windows, the detector and the outbox are
only ever touched from that one thread and need no locks. A job handed to the
worker is awaited to its end even when the agent is being stopped
(:func:`to_the_end`): the samples or alerts it carries must not vanish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

"""Samples the recorder holds for the twin while it refuses writes (about 20 MB)."""


class Worker:
    """One thread for every blocking call: SQLite connections stay on one thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for the running call, then stop the thread."""
        self._pool.shutdown(wait=True)


async def to_the_end(job: Awaitable[T]) -> T:
    """Await ``job`` to its end even if we are cancelled meanwhile, then re-raise the cancel.

    A plain ``await worker.run(...)`` that is cancelled while the job still waits
    behind another one drops the job: a batch of samples or alerts would be lost.
    """
    future = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await future
        raise
