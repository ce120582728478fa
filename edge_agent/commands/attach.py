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


class OutboxAudit:
    """An audit that stores each reply as a ``command`` row for every sink, then wakes them.

    Args:
        outbox: the outbox (its ``put_commands`` runs on the worker thread).
        run: runs a function on the worker thread.
        gateway: ``agent.id``.
        infos: the signal catalogue (each audit event names its signal's asset).
        wake: wakes the sinks' delivery loops.
    """

    def __init__(
        self, outbox: Any, run: Callable[..., Awaitable[Any]], gateway: str,
        infos: Sequence[SignalInfo], wake: Callable[[], None],
    ) -> None:  # fmt: skip
        self.outbox, self.run, self.gateway, self.wake = outbox, run, gateway, wake
        self.recatalogue(infos)

    def recatalogue(self, infos: Sequence[SignalInfo]) -> None:
        """The catalogue after a reload: new signals' assets."""
        self.assets = {info.signal: info.asset for info in infos}

    async def __call__(self, reply: Reply) -> None:
        from edge_agent.commands.message import encode_audit  # at the first reply, not at start

        event = (self.assets.get(reply.signal, ""), reply.ts, encode_audit(reply, self.gateway))
        await self.run(self.outbox.put_commands, [event], self.gateway)
        self.wake()


def attach_commands(
    config: WritesConfig, sources: Sequence[Any], sinks: Sequence[Any],
    infos: Sequence[SignalInfo], audit: Audit, executor: Executor | None = None,
) -> Executor | None:  # fmt: skip
    """Give the sinks with ``commands: on`` one shared executor; None when no sink takes any.

    ``executor``: the one already shared (a reload starting a sink), else one is built.
    """
    takers = [s for s in sinks if getattr(s.config, "commands", "off") == "on"]
    if not takers:
        return executor
    if executor is None:
        from edge_agent.commands.executor import Executor

        executor = Executor(config, sources, {info.signal for info in infos}, audit)
    for sink in takers:
        sink.commands = executor
    names = ", ".join(sink.config.name for sink in takers)
    if config.mode != "on":
        log.warning("commands: sink(s) %s take commands, but writes.mode is off: all refused",
                    names)  # fmt: skip
    else:
        log.info("commands: writes on for %d signal(s), from sink(s) %s",
                 len(executor.owners), names)  # fmt: skip
    return executor


def retarget_commands(
    executor: Executor, sources: Sequence[Any], infos: Sequence[SignalInfo], config: WritesConfig
) -> None:
    """After a reload: commands go to ``sources`` under ``config`` (the ``writes:`` section);
    audit events name the assets of ``infos``."""
    if config.mode != executor.policy.config.mode:
        level, tail = (
            (logging.INFO, "") if config.mode == "on" else (logging.WARNING, ": all refused")
        )
        log.log(level, "commands: writes.mode is now %s%s", config.mode, tail)
    executor.policy.config = config
    executor.retarget(sources, {info.signal for info in infos})
    if isinstance(executor.audit, OutboxAudit):
        executor.audit.recatalogue(infos)
