"""SIGHUP: reload the config and restart only the parts that changed.

The new file passes the same checks as ``check-config`` first (models and cards
loaded, secret files' modes); if it fails, the agent keeps running the old config
and logs why in one line. The granularity: a source by name, a sink by name, the
detector as a whole. Unchanged parts keep running untouched. Nothing in flight is
lost on the way: a restarted source's samples already read are in the recorder's
buffer; a restarted sink's rows stay in the outbox until acknowledged; the new
detector gets its windows from the twin (on the worker thread, between two
flushes) and takes over the open alerts with their ids, those the outbox refused so far
and the detector loop holds in memory included, so an alert open across a reload is
neither raised twice nor lost. Sections opened once at start (agent,
twin, outbox, web, metrics) need a restart: such a reload is refused whole, and the
log says what to do; the ``writes:`` section applies to the next command.

Commands follow the sources: the executor shared by the sinks that take commands is
routed to the new sources before the old ones stop (a removed source's signals are
refused as unknown), and a write in flight on a source that stops ends on it first
(:meth:`Running._retarget`). A Sparkplug sink is told the new signal catalogue: its
new, changed and removed devices are born, born again or declared dead, and DCMD
finds the new metrics. A changed Sparkplug sink or sink that takes commands restarts
by name like any sink: a Sparkplug one ends its session with an NDEATH and opens the
next (the next bdSeq, new births), keeping the values and alerts the old one knew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.commands.attach import attach_commands, retarget_commands
from edge_agent.config import AgentConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.errors import AgentError
from edge_agent.forward.delivery import LinkState, deliver_forever
from edge_agent.forward.live import LiveSink, with_live, without_live
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.telemetry import telemetry_forever
from edge_agent.sources.poll import PollStats, link_info, poll_forever
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.store import SignalStore
from edge_agent.types import Alert, SignalInfo
from edge_agent.wiring import catalogue, hand_over, warm_windows
from edge_agent.worker import Worker

if TYPE_CHECKING:
    from edge_agent.commands.executor import Executor
    from edge_agent.preflight import Checked

log = logging.getLogger(__name__)

SETTLE = 30.0
"""Seconds a reload waits for the writes in flight on a source it stops.

A write ends by itself within its source's timeouts (Modbus: one tick, the write and
its read-back; OPC UA: two calls); this bounds a config with huge ones. Past it the
source stops anyway: its connection closes under the write, which ends ``failed``.
"""

RESTART_SECTIONS = ("agent", "twin", "outbox", "web", "metrics")
"""Sections whose parts are opened once at start: a change needs ``systemctl restart``."""


@dataclass(frozen=True)
class Changes:
    """Items of a list section (sources or sinks) told apart by name."""

    added: list[str]
    removed: list[str]
    changed: list[str]

    @classmethod
    def between(cls, old: Sequence[Any], new: Sequence[Any]) -> Changes:
        """Compare two lists of configs by their ``name``."""
        before, after = {c.name: c for c in old}, {c.name: c for c in new}
        return cls(
            added=[n for n in after if n not in before],
            removed=[n for n in before if n not in after],
            changed=[n for n in after if n in before and after[n] != before[n]],
        )

    @property
    def stopping(self) -> list[str]:
        """Names whose running part stops: removed or changed."""
        return self.removed + self.changed

    @property
    def starting(self) -> list[str]:
        """Names whose part starts anew: added or changed."""
        return self.added + self.changed

    def describe(self, what: str) -> list[str]:
        """``source press2 added``, one phrase per change."""
        verbs = {"added": self.added, "removed": self.removed, "changed": self.changed}
        return [f"{what} {name} {verb}" for verb, names in verbs.items() for name in names]


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload from ``old`` to ``new`` restarts, or why it cannot."""

    sources: Changes
    sinks: Changes
    detector: bool
    needs_restart: list[str]
    writes: bool = False
    """The ``writes:`` section changed: the commands' policy takes it at once."""

    def describe(self) -> str:
        """One phrase per restarted part, for the log line."""
        parts = self.sources.describe("source") + self.sinks.describe("sink")
        parts += ["detector restarted"] if self.detector else []
        return ", ".join(parts + (["writes changed"] if self.writes else [])) or "no change"


def plan_reload(old: AgentConfig, new: AgentConfig) -> ReloadPlan:
    """Compare two validated configs part by part."""
    restart = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    sources = Changes.between(old.sources, new.sources)
    sinks = Changes.between(old.sinks, new.sinks)
    return ReloadPlan(sources, sinks, old.detect != new.detect, restart, old.writes != new.writes)


def one_line(exc: BaseException) -> str:
    """An error's message on one log line (a ConfigError lists one problem per line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return (lines[0] if lines else type(exc).__name__) + more


@dataclass
class Running:
    """The running parts a reload may restart, and the task group they run in."""

    config: AgentConfig
    path: Path | None
    tasks: asyncio.TaskGroup
    worker: Worker
    store: SignalStore
    outbox: Outbox
    recorder: Recorder
    detect: DetectorLoop
    make_sink: Callable[[AgentConfig, Any], Any]
    live: list[Any] = field(default_factory=list)
    """Sinks that keep the signal catalogue (Sparkplug): told of a new one."""
    commands: Executor | None = None
    """The executor of the sinks that take commands: routed to the new sources."""
    audit: Any = None
    """The commands' audit (:class:`~edge_agent.commands.attach.OutboxAudit`), for an
    executor a reload builds when it starts the first sink that takes commands."""
    polls: list[tuple[Any, PollStats]] = field(default_factory=list)
    links: dict[str, LinkState] = field(default_factory=dict)
    wakes: dict[str, asyncio.Event] = field(default_factory=dict)
    _poll_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _sink_tasks: dict[str, list[asyncio.Task[None]]] = field(default_factory=dict)
    _sinks: dict[str, Any] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def start_source(self, source: Any) -> None:
        """Poll ``source`` in the task group (its stats are shown by the metrics view)."""
        stats = PollStats()
        self.polls.append((source, stats))
        task = self.tasks.create_task(poll_forever(source, self.recorder.accept, stats))
        self._poll_tasks[source.config.name] = task

    def start_sink(self, sink: Any) -> None:
        """Deliver the outbox's rows to ``sink`` (and its telemetry, if on)."""
        name = sink.config.name
        self._sinks[name] = sink
        wake = self.wakes.setdefault(name, asyncio.Event())
        link = self.links.setdefault(name, LinkState())
        tasks = [self.tasks.create_task(
            deliver_forever(self.outbox, sink, name, self.worker.run, wake, link)
        )]  # fmt: skip
        if sink.config.telemetry == "on":
            gateway = self.config.agent.id
            tasks.append(self.tasks.create_task(
                telemetry_forever(self.store, self.outbox, sink.config, gateway,
                                  self.worker.run, wake)
            ))  # fmt: skip
        self._sink_tasks[name] = tasks

    async def reload(self) -> None:
        """Handle one SIGHUP; never raises (it runs in the agent's task group)."""
        async with self._lock:  # a second SIGHUP waits for the first reload
            try:
                await self._reload()
            except asyncio.CancelledError:
                raise
            except Exception:  # the agent must outlive a reload that went wrong
                log.exception("SIGHUP: reload failed part-way; restart the service")

    async def _reload(self) -> None:
        from edge_agent.secret_files import check_secret_files

        if self.path is None:
            log.warning("SIGHUP: this agent was not started from a file: nothing to reload")
            return
        try:  # the same checks as check-config; models load off the event loop
            checked = await asyncio.to_thread(_check_apart, self.path)
            check_secret_files(checked.config, self.path)
        except (AgentError, OSError) as exc:
            log.error("SIGHUP: %s not reloaded, still running the old config: %s",
                      self.path, one_line(exc))  # fmt: skip
            return
        plan = plan_reload(self.config, checked.config)
        if plan.needs_restart:
            log.warning("SIGHUP: %s not reloaded: %s changed, which needs a restart "
                        "(systemctl restart edge-agent); still running the old config",
                        self.path, ", ".join(plan.needs_restart))  # fmt: skip
            return
        await self._apply(plan, checked.config, checked.sources, checked.detector)
        log.info("SIGHUP: %s reloaded: %s", self.path, plan.describe())

    async def _apply(
        self, plan: ReloadPlan, new: AgentConfig, sources: list[Any], detector: Detector
    ) -> None:
        built = {s.config.name: s for s in sources}
        # The same catalogue as at a start (link signals included): the swapped
        # detector's windows are sized alike, and the live sinks see what runs now.
        every = catalogue(sources, detector)
        await self._retarget(plan, new, built, every)
        for name in plan.sources.stopping:
            await _stop(self._poll_tasks.pop(name))
            self.polls[:] = [p for p in self.polls if p[0].config.name != name]
        stopped = {name: await self._stop_sink(name) for name in plan.sinks.stopping}
        starting = [built[name] for name in plan.sources.starting]
        infos = [i for s in starting for i in s.signals()] + [link_info(s) for s in starting]
        await self.worker.run(self.store.register, infos)  # before their first samples
        self.config = new
        if plan.detector:
            async with self.detect.stepping:
                held = list(self.detect.unsent)
                orphans = await self.worker.run(
                    self._swap_detector, detector, every, held, time.time()
                )
                if orphans:  # after the held alerts; held too if the outbox still refuses
                    await self.detect.put(orphans)
        if plan.detector or plan.sources.added or plan.sources.stopping:
            for sink in self.live:  # before the new sources' first samples
                await sink.recatalogue(every)
        for source in starting:
            self.start_source(source)
        await self.worker.run(setattr, self.outbox, "sinks", [c.name for c in new.sinks])
        for config in new.sinks:
            if config.name in plan.sinks.starting:
                sink = self.make_sink(new, config)
                self._wire(sink, every, stopped.get(config.name))
                self.start_sink(sink)

    async def _stop_sink(self, name: str) -> Any:
        """Stop a sink (a Sparkplug one publishes its NDEATH); its rows stay in the outbox."""
        sink = self._sinks.pop(name)
        for task in self._sink_tasks.pop(name):
            await _stop(task)
        self.wakes.pop(name, None)
        if sink in self.live:
            self.live.remove(sink)
            self._observe(without_live(self.recorder.observer, sink))
        return sink

    def _wire(self, sink: Any, every: list[SignalInfo], old: Any) -> None:
        """Commands and live samples for a sink a reload starts, as at a start.

        ``old``: the sink of the same name the reload stopped, if any; a live one hands
        over what it learnt.
        """
        if getattr(sink.config, "commands", "off") == "on":
            sources = [source for source, _ in self.polls]
            self.commands = attach_commands(
                self.config.writes, sources, [sink], every, self.audit, self.commands
            )
        if isinstance(sink, LiveSink):
            sink.describe(every)
            if type(old) is type(sink) and hasattr(sink, "take_over"):
                sink.take_over(old)
            self.live.append(sink)
            self._observe(with_live(self.recorder.observer, sink))

    def _observe(self, observer: Any) -> None:
        """Who sees each recorded batch and each alert (the live sinks among them)."""
        self.recorder.observer = self.detect.observer = observer

    async def _retarget(
        self, plan: ReloadPlan, new: AgentConfig, built: dict[str, Any], every: list[SignalInfo]
    ) -> None:
        """Commands go to the new sources before the old ones stop.

        A command from now on finds the new source (not connected yet: it fails, said
        so) or no source (refused, unknown signal); a write already in flight on a
        stopping source ends on it first, within ``SETTLE`` seconds.
        """
        if self.commands is None:
            return
        running = {source.config.name: source for source, _ in self.polls}
        starting = set(plan.sources.starting)
        after = [built[c.name] if c.name in starting else running[c.name] for c in new.sources]
        retarget_commands(self.commands, after, every, new.writes)
        stopping = [running[name] for name in plan.sources.stopping]
        if writing := self.commands.writing(stopping):
            log.info("SIGHUP: waiting for the write(s) in flight to %s before restarting "
                     "their source", ", ".join(sorted(set(writing.values()))))  # fmt: skip
        left = await self.commands.settle(stopping, SETTLE)
        if left:
            log.warning("SIGHUP: %d write(s) still running after %.0f s on a source that "
                        "restarts: it stops anyway, they end failed", left, SETTLE)  # fmt: skip

    def _swap_detector(
        self, detector: Detector, infos: list[SignalInfo], held: list[Alert], now: float
    ) -> list[Alert]:
        """On the worker thread, between two flushes and two steps: no sample slips past.

        The new detector takes over the open alerts, ``held`` (refused by the outbox so
        far) included; returns the clears of those whose rule or asset is gone.
        """
        self.store.register(detector.signal_infos())
        windows = warm_windows(self.store, detector, infos, now)
        _, orphans = hand_over(detector, self.outbox, held, now)
        self.recorder.windows = windows
        self.detect.detector, self.detect.windows = detector, windows
        self.detect.interval = self.config.detect.interval
        return orphans


def _check_apart(path: Path) -> Checked:
    """``check_config``, the file parsed by another process (see ``config_fork.py``).

    So a reload, like the start, builds no validator in the agent's process and
    leaves no parse debris there.
    """
    from edge_agent.config_fork import load_config_apart
    from edge_agent.preflight import check_loaded

    return check_loaded(load_config_apart(path))


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a part and wait until it has closed its connection."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
