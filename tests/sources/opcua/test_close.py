"""Closing an OPC UA session or subscription keeps a stop that comes with the server's answer.

Python 3.11's ``asyncio.wait_for`` returns the answer and drops a cancel that lands in
the same loop iteration (CPython issue 86296, ``edge_agent/cancel.py``). The closes
wait with ``asyncio.timeout``, which keeps it. The race cannot be timed against a real
server, so a stand-in for asyncua's client (and subscription) answers together with
the stop, as ``tests/test_cancel.py``'s stand-ins for the libraries do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.sources.opcua.session import close_client
from edge_agent.sources.opcua.subscribe import _delete


class _Peer:
    """The calls the closes make, each answered in the loop iteration that brings the stop."""

    def __init__(self) -> None:
        self.stop: Callable[[], object] = lambda: None
        self.calls: list[str] = []

    async def _answer_with_the_stop(self, call: str) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[None] = loop.create_future()

        def both() -> None:
            answer.set_result(None)
            self.stop()

        loop.call_soon(both)
        await answer
        self.calls.append(call)

    async def close_session(self) -> None:
        await self._answer_with_the_stop("close_session")

    async def close_secure_channel(self) -> None:
        self.calls.append("close_secure_channel")

    async def delete(self) -> None:
        await self._answer_with_the_stop("delete")

    def disconnect_socket(self) -> None:
        self.calls.append("disconnect_socket")


def _close(peer: _Peer) -> Awaitable[None]:
    return close_client(peer)  # type: ignore[arg-type]


def _delete_subscription(peer: _Peer) -> Awaitable[None]:
    return _delete(SimpleNamespace(sub=peer))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("close", "calls"),
    [(_close, ["disconnect_socket"]), (_delete_subscription, [])],
    ids=["close_client", "delete_subscription"],
)
async def test_a_stop_that_comes_with_the_answer_ends_the_close(
    close: Callable[[_Peer], Awaitable[Any]], calls: list[str]
) -> None:
    """The task ends cancelled, nothing more is sent, and the socket is still closed."""
    peer = _Peer()

    async def closing() -> None:
        await close(peer)

    task = asyncio.create_task(closing())
    peer.stop = task.cancel
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled(), f"the stop was swallowed; the close went on: {peer.calls}"
    assert peer.calls == calls
