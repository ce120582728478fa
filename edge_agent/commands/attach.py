"""Wiring of commands: one executor for the sinks that take commands, audits to the outbox."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from edge_agent.commands.config import WritesConfig
from edge_agent.commands.executor import Audit, Executor
from edge_agent.commands.message import encode_audit
from edge_agent.commands.policy import Reply
from edge_agent.types import SignalInfo

log = logging.getLogger(__name__)


def outbox_audit(
    outbox: Any, run: Callable[..., Awaitable[Any]], gateway: str,
    infos: Sequence[SignalInfo], wake: Callable[[], None],
) -> Audit:  # fmt: skip
    """An audit that stores each reply as a ``command`` row for every sink, then wakes them."""
    assets = {info.signal: info.asset for info in infos}

    async def audit(reply: Reply) -> None:
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
