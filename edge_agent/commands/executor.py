"""Runs write commands: policy, write, read back, compare; one reply and one audit each.

The executor is shared by every sink that takes commands (MQTT JSON, Sparkplug
NCMD/DCMD). For each command it asks the :class:`~edge_agent.commands.policy.Policy`,
calls the owning source's ``write(signal, value)`` (which writes and reads back, see
the sources), compares what was read back with what was written, then logs one
journal line and hands the reply to ``audit`` (the outbox: store-and-forward like
alerts). A command whose id was seen recently is not executed again: it gets the
first one's reply (an MQTT QoS 1 redelivery must not write twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from edge_agent.commands.config import WriteLimits, WritesConfig
from edge_agent.commands.policy import Command, Policy, Reply, Status, Target, Value
from edge_agent.errors import AgentError
from edge_agent.types import ReadBack

log = logging.getLogger(__name__)

Audit = Callable[[Reply], Awaitable[None]]
_RECENT = 1024  # ids remembered for redeliveries


class Writer(Protocol):
    """A source that can write: its writable signals and ``write``."""

    def writable(self) -> dict[str, tuple[WriteLimits, bool]]:
        """Signal -> (its ``write:`` limits, whether it holds a bool)."""
        ...

    async def write(self, signal: str, value: Value) -> ReadBack:
        """Write ``value`` and read it back; raises WriteError or SourceError."""
        ...


class Executor:
    """Executes commands against the sources (see the module docstring).

    Args:
        config: the ``writes:`` section.
        sources: every source of the agent (those without ``writable`` write nothing).
        known: every signal name of the agent.
        audit: awaited with each reply (stores the audit event upstream).
    """

    def __init__(
        self, config: WritesConfig, sources: Sequence[Any], known: set[str], audit: Audit
    ) -> None:
        self.owners: dict[str, Writer] = {}
        self.policy = Policy(config, {}, set())
        self.audit = audit
        self._recent: OrderedDict[tuple[str, str], asyncio.Future[Reply]] = OrderedDict()
        self._writes: dict[asyncio.Task[ReadBack], tuple[Writer, str]] = {}
        """Writes in flight: the source each runs on and its signal (a reload waits)."""
        self.retarget(sources, known)

    def retarget(self, sources: Sequence[Any], known: set[str]) -> None:
        """Route commands to ``sources`` from now on (at start, and when a reload changed them).

        Synchronous, so no command sees half of it. A write in flight goes on on the
        source it started on (:meth:`settle` waits for it); a signal no longer known
        is refused as unknown, like any unknown name. The rate limits and the writes
        in progress are kept for the signals that stay writable.
        """
        owners: dict[str, Writer] = {}
        targets: dict[str, Target] = {}
        for source in sources:
            for signal, (limits, boolean) in getattr(source, "writable", dict)().items():
                owners[signal] = source
                targets[signal] = Target(limits, boolean)
        self.owners = owners
        policy = self.policy
        policy.targets, policy.known = targets, known
        policy.last = {s: t for s, t in policy.last.items() if s in targets}

    def writing(self, sources: Sequence[Any]) -> dict[asyncio.Task[ReadBack], str]:
        """The writes in flight on ``sources``, and the signal of each."""
        return {
            task: signal
            for task, (owner, signal) in self._writes.items()
            if any(owner is source for source in sources)
        }

    async def settle(self, sources: Sequence[Any], within: float) -> int:
        """Wait until the writes in flight on ``sources`` have ended, at most ``within`` s.

        Returns:
            How many are still running (each still ends with a reply of its own).
        """
        running = self.writing(sources)
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=within)
        return len(pending)

    async def execute(self, command: Command) -> Reply:
        """Run one command to its end; never raises for a refused or failed write."""
        key = (command.origin, command.id)
        earlier = self._recent.get(key)
        if earlier is not None:
            return await asyncio.shield(earlier)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._recent[key] = future
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        reply = await asyncio.shield(self._run(command))
        future.set_result(reply)
        return reply

    async def reject(self, reply: Reply) -> None:
        """Journal and audit the refusal of a payload that was no valid command."""
        _journal(reply)
        await self._audit(reply)

    async def _audit(self, reply: Reply) -> None:
        try:
            await self.audit(reply)
        except Exception as exc:  # the write happened: its reply must still go out
            log.error("command %s: audit event not stored: %s", reply.id, exc)

    async def _run(self, command: Command) -> Reply:
        start = time.monotonic()
        reason = self.policy.refusal(command, time.time())
        if reason is not None:
            reply = _reply(command, "refused", reason, None, start)
        else:
            reply = await self._write(command, start)
        _journal(reply)
        await self._audit(reply)
        return reply

    async def _write(self, command: Command, start: float) -> Reply:
        signal = command.signal
        self.policy.begin(signal, time.time())
        owner = self.owners[signal]
        write = asyncio.ensure_future(owner.write(signal, command.value))
        self._writes[write] = (owner, signal)
        try:
            back = await write
        except ValueError as exc:  # the device's type cannot hold it: nothing was sent
            self.policy.last.pop(signal, None)
            return _reply(command, "refused", str(exc), None, start)
        except AgentError as exc:
            return _reply(command, "failed", str(exc), None, start)
        except Exception as exc:  # a library's surprise: the command still gets its reply
            log.exception("command %s: unexpected error while writing %s", command.id, signal)
            return _reply(command, "failed", f"unexpected error: {exc!r}", None, start)
        finally:
            self._writes.pop(write, None)
            self.policy.end(signal)
        if back.actual != back.expected:
            reason = f"read back {back.actual:g}, expected {back.expected:g}"
            return _reply(command, "failed", reason, back.actual, start)
        return _reply(command, "done", "", back.actual, start)


def _reply(
    command: Command, status: Status, reason: str, read_back: float | None, start: float
) -> Reply:
    return Reply(
        command.id, command.signal, command.value, status, reason, read_back,
        command.origin, time.time(), time.monotonic() - start,
    )  # fmt: skip


def _journal(reply: Reply) -> None:
    """One line per command: INFO when done, WARNING when refused or failed."""
    level = logging.INFO if reply.status == "done" else logging.WARNING
    tail = f": {reply.reason}" if reply.reason else f" (read back {reply.read_back})"
    log.log(level, "command %s from %s: write %s = %r %s%s", reply.id, reply.origin,
            reply.signal, reply.value, reply.status, tail)  # fmt: skip
