"""A stop swallowed by a library's ``wait_for`` (edge_agent/cancel.py), and how tests make one.

:func:`answer_with_the_stop` is what pymodbus, aiomqtt and asyncua do on Python 3.11
when the stop arrives together with the answer they wait for: the real
``asyncio.wait_for``, its answer and the cancel landing in one loop iteration. The
loops' tests use it in stand-ins for the library call (a sink, a session, a worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable

import pytest

from edge_agent.cancel import cancel_was_swallowed


async def answer_with_the_stop(stop: Callable[[], object], error: Exception | None = None) -> None:
    """Await ``asyncio.wait_for`` whose answer (``error``, if given) comes with ``stop()``.

    ``stop`` cancels the task under test: the one awaiting this, or one awaiting it in
    turn. On 3.11 the answer wins: this returns (or raises ``error``) and the cancel
    reaches nobody.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[None] = loop.create_future()

    def both() -> None:
        if error is None:
            answer.set_result(None)
        else:
            answer.set_exception(error)
        stop()

    loop.call_soon(both)
    await asyncio.wait_for(answer, timeout=10)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancel from 3.12")
async def test_wait_for_swallows_a_stop_that_comes_with_its_answer() -> None:
    """The premise of the loops' stop tests: without this they would prove nothing."""
    seen: list[bool] = []

    async def library_call() -> None:
        task = asyncio.current_task()
        assert task is not None
        await answer_with_the_stop(task.cancel)
        seen.append(cancel_was_swallowed())

    task = asyncio.create_task(library_call())
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not task.cancelled()
    assert seen == [True]


async def test_no_cancel_no_swallow() -> None:
    assert not cancel_was_swallowed()
    await asyncio.sleep(0)
    assert not cancel_was_swallowed()
