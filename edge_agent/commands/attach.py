"""Wiring of commands: one executor for the sinks that take commands, audits to the outbox."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from edge_agent.commands.config import WritesConfig
from edge_agent.types import SignalInfo

if TYPE_CHECKING:  # the executor is imported by a config that takes commands (about 4 ms)
    from edge_agent.commands.executor import Audit, Executor
    from edge_agent.commands.policy import Reply

log = logging.getLogger(__name__)


def outbox_audit(
    outbox: Any, run: Callable[..., Awaitable[Any]], gateway: str,
    infos: Sequence[SignalInfo], wake: Callable[[], None],
) -> Audit:  # fmt: skip
    """An audit that stores each reply as a ``command`` row for every sink, then wakes them."""
    assets = {info.signal: info.asset for info in infos}

    async def audit(reply: Reply) -> None:
        from edge_agent.commands.message import encode_audit  # at the first reply, not at start

        event = (assets.get(reply.signal, ""), reply.ts, encode_audit(reply, gateway))
        await run(outbox.put_commands, [event], gateway)
        wake()

    return audit


def attach_commands(
    config: WritesConfig, sources: Sequence[Any], sinks: Sequence[Any],
    infos: Sequence[SignalInfo], audit: Audit,
) -> Executor | None:  # fmt: skip
    """Give the sinks with ``commands: on`` one shared executor; None when no sink takes any."""
    takers = [s for s in sinks if getattr(s.config, "commands", "off") == "on"]
    if not takers:
        return None
    from edge_agent.commands.executor import Executor

    executor = Executor(config, sources, {info.signal for info in infos}, audit)
    for sink in takers:
        sink.commands = executor
    writable = len(executor.owners)
    if config.mode != "on":
        log.warning("commands: %d sink(s) take commands, but writes.mode is off: all refused",
                    len(takers))  # fmt: skip
    else:
        log.info("commands: writes on for %d signal(s), from %d sink(s)", writable, len(takers))
    return executor
