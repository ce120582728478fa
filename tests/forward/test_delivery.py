"""The delivery loop ends on a stop that its sink's library swallowed (CPython gh-86296).

A stand-in sink answers its connect or its send together with the stop, through the
real ``asyncio.wait_for`` (tests/test_cancel.py), as aiomqtt's does on 3.11. Without
the loop's check it backed off and reconnected, or waited for new rows, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from edge_agent.errors import DeliveryError
from edge_agent.forward.config import OutboxConfig, SinkSettings
from edge_agent.forward.delivery import deliver_forever
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.outbox_rows import Record
from tests.forward.factory import make_alert
from tests.test_cancel import answer_with_the_stop


class RacingSink:
    """A sink whose first connect (or send) is answered together with the stop.

    ``where``: ``failing connect`` (refused, and every later connect too: no broker),
    ``connect`` (accepted) or ``send`` (acknowledged).
    """

    def __init__(self, where: str) -> None:
        self.config = SinkSettings.model_validate(
            {"name": "up", "backoff": "10ms", "backoff_max": "20ms"}
        )
        self.where = where
        self.stop: Callable[[], object] = lambda: None
        self.raced = False
        self.connects = 0

    async def _answer(self, error: Exception | None = None) -> None:
        if not self.raced:  # once: a second cancel still ends a failing test
            self.raced = True
            await answer_with_the_stop(self.stop, error)
        elif error is not None:
            raise error

    async def __aenter__(self) -> Self:
        self.connects += 1
        if self.where == "failing connect":
            try:
                await self._answer(ConnectionRefusedError("refused"))
            except OSError as exc:
                raise DeliveryError(f"up: cannot connect: {exc}") from exc
        if self.where == "connect":
            await self._answer()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass

    async def send(self, batch: Sequence[Record]) -> None:
        if self.where == "send":
            await self._answer()


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)  # the few outbox calls of a test may block the loop


@pytest.mark.parametrize("where", ["failing connect", "connect", "send"])
async def test_a_stop_swallowed_by_the_sink_still_ends_delivery(tmp_path: Path, where: str) -> None:
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["up"])
    outbox.put_alerts([make_alert(1)], "gw")
    sink = RacingSink(where)
    task = asyncio.create_task(deliver_forever(outbox, sink, "up", _inline, asyncio.Event()))
    sink.stop = task.cancel
    done, _ = await asyncio.wait([task], timeout=2.0)
    task.cancel()  # a second cancel is not swallowed: the test ends either way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    outbox.close()
    assert sink.raced
    assert done, f"delivery ran on after its {where} swallowed the stop"
    assert sink.connects == 1
