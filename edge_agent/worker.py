"""The single worker thread that runs everything blocking: SQLite and inference.

Everything blocking (SQLite, inference) runs on the agent's single worker thread
(:class:`Worker`), so the twin, the windows, the detector and the outbox are
only ever touched from that one thread and need no locks. A job handed to the
worker is awaited to its end even when the agent is being stopped
(:func:`to_the_end`): the samples or alerts it carries must not vanish.

The thread takes jobs from a queue and settles an asyncio future per job on the
loop: no ``concurrent.futures`` future and no chaining between the two kinds.
At 1 s ticks the agent hands the thread two jobs a second (the flush and the
detector step), each from a cold start; through ``run_in_executor`` one cost
110-230 us of CPU, like this 30-115 us (BENCHMARKS.md, *Where the time goes*).

After a job the thread may call ``after_job`` (the agent passes
:class:`edge_agent.heap.Trimmer`: the C heap is trimmed there, between two
jobs, at most once a minute).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class Worker:
    """One thread for every blocking call: SQLite connections stay on one thread."""

    def __init__(self, after_job: Callable[[], None] | None = None) -> None:
        self._after_job = after_job
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)`` for the worker thread; await the returned future.

        Jobs run one at a time, in the order queued. A job whose future is cancelled
        before the thread takes it does not run (as with an executor); once it runs,
        it runs to its end and a cancel only drops its result.

        Raises:
            RuntimeError: the worker was closed.
        """
        if self._closed:
            raise RuntimeError("cannot run a job on a closed worker")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="edge-db", daemon=True)
            self._thread.start()
        self._jobs.put((loop, future, functools.partial(fn, *args, **kwargs)))
        return future

    def close(self) -> None:
        """Run the jobs already queued, then stop the thread."""
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call = job
            if future.cancelled():  # a read of a flag the loop sets: safe under the GIL
                continue
            try:
                result = call()
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                _reply(loop, _fail, future, exc)
            else:
                _reply(loop, _settle, future, result)
            if self._after_job is not None:
                self._after_job()


def _reply(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    try:
        loop.call_soon_threadsafe(settle, future, value)
    except RuntimeError:  # the loop is closed: nobody waits for this result any more
        log.debug("worker: result of a job dropped, its event loop is closed")


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(exc)


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
