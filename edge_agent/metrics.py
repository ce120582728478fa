"""Prometheus metrics of a running agent: the text behind the site view's ``/metrics``.

Pull model: nothing is counted here. The stages already keep counters
(:class:`~edge_agent.sources.poll.PollStats` per source, per Modbus unit and
per OPC UA source their own (:mod:`edge_agent.metrics_links`), the recorder's
``written``/``failing``, the detector loop's ``raised``/``cleared``, the
outbox's backlog and drop/reject counters); a custom collector reads them when
Prometheus scrapes, so the hot path pays nothing per sample.

Where it runs. The web server (:mod:`edge_agent.web.server`) renders a scrape
on the event loop, so the plain counters of the poll loops, the recorder and the
detector loop are read live. The outbox (SQLite) and the detector belong to the
agent's worker thread: they are read into a :class:`Snapshot` by
:func:`take_snapshot` (through ``run``, i.e. on the worker thread), together with
a source's own counters (a serial line's ``counters``), only when a request
finds the last snapshot older than ``metrics.refresh``
(:meth:`edge_agent.web.site.Site.snapshot_fresh`); those values are up to
``refresh`` old (``edge_agent_metrics_snapshot_timestamp_seconds`` says when they
were read; the oldest-row age is computed at scrape time).
``Outbox.status()`` groups the whole backlog: measured 35 ms for a 100k-row
backlog on the dev machine (microseconds when the outbox is drained), at most
once per ``refresh`` on the worker thread, never per scrape.

The text is written by :mod:`edge_agent.exposition` (the families here are its
:class:`~edge_agent.exposition.Family`), the process's own series by
:mod:`edge_agent.process_metrics`: prometheus_client is not used by the daemon
(its import cost 2 MB of RSS; see :mod:`edge_agent.exposition`).

Metrics reveal plant topology (source, asset and sink names); who may read them
is the web server's rule (loopback, or a bearer token).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from edge_agent import __version__
from edge_agent.detect.asset import Scored
from edge_agent.detect.loop import DetectorLoop
from edge_agent.exposition import Family, counter, gauge, render
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.outbox_rows import CLASSES
from edge_agent.forward.outbox_status import OutboxStatus
from edge_agent.metrics_links import modbus_metrics, opcua_metrics
from edge_agent.process_metrics import process_families
from edge_agent.sources.poll import PollStats, Source
from edge_agent.twin.recorder import Recorder

Run = Callable[..., Awaitable[Any]]
"""``worker.run``: runs a blocking call on the agent's worker thread."""

PREFIX = "edge_agent"


@dataclass
class AgentView:
    """References to the live stages the collector reads (the lead's wiring builds it).

    Attributes:
        gateway: this gateway's id (``agent.id``).
        polls: each source with the :class:`PollStats` its poll loop updates.
        recorder: the twin recorder.
        detect: the detector loop (its ``detector`` gives health and scores).
        outbox: the outbox, read only through ``run`` (the worker thread).
    """

    gateway: str
    polls: Sequence[tuple[Source, PollStats]] = ()
    recorder: Recorder | None = None
    detect: DetectorLoop | None = None
    outbox: Outbox | None = None


@dataclass(frozen=True)
class Snapshot:
    """What the event loop read for the collector (replaced whole, never mutated).

    Attributes:
        taken: when it was read (Unix seconds; 0 before the first read).
        outbox: the outbox status (None without an outbox or before the first read).
        sinks: the configured sinks (they get zero backlog series when empty).
        health: asset -> health 0..100.
        scores: asset -> latest scored window (None before the first).
        source_counters: source -> its own counters (serial: frames, good, ...).
    """

    taken: float = 0.0
    outbox: OutboxStatus | None = None
    sinks: tuple[str, ...] = ()
    health: Mapping[str, float] = field(default_factory=dict)
    scores: Mapping[str, Scored | None] = field(default_factory=dict)
    source_counters: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def _worker_part(
    view: AgentView,
) -> tuple[OutboxStatus | None, dict[str, float], dict[str, Scored | None]]:
    # On the worker thread, which owns the outbox's SQLite connection and the detector.
    status = view.outbox.status() if view.outbox is not None else None
    if view.detect is None:
        return status, {}, {}
    detector = view.detect.detector
    return status, detector.health(), detector.scores()


async def take_snapshot(view: AgentView, run: Run) -> Snapshot:
    """Read a snapshot: source counters here on the event loop, the rest on the worker."""
    counters = {
        source.config.name: dict(found)
        for source, _ in view.polls
        if isinstance(found := getattr(source, "counters", None), Mapping)
    }
    status, health, scores = await run(_worker_part, view)
    sinks = tuple(view.outbox.sinks) if view.outbox is not None else ()
    return Snapshot(time.time(), status, sinks, health, scores, counters)


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> Family:
    return counter(f"{PREFIX}_{name}", doc, labels)


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Family:
    return gauge(f"{PREFIX}_{name}", doc, labels)


class AgentCollector:
    """The agent's metric families over an :class:`AgentView` (see the module docstring).

    Args:
        view: the live stages.
    """

    def __init__(self, view: AgentView) -> None:
        self.view = view
        self.snapshot = Snapshot()
        self.refresh_failures = 0

    def collect(self) -> Iterator[Family]:
        """The agent's families, once per scrape (on the event loop: the web server)."""
        snap = self.snapshot
        yield from self._meta(snap)
        yield from self._sources(snap)
        yield from self._twin()
        yield from self._detector(snap)
        yield from self._outbox(snap)

    def _meta(self, snap: Snapshot) -> Iterator[Family]:
        info = _gauge("info", "Constant 1: this gateway's id and version.", ["gateway", "version"])
        info.add([self.view.gateway, __version__], 1.0)
        taken = _gauge(
            "metrics_snapshot_timestamp_seconds",
            "When the outbox, detector and source-counter values were read (0: not yet).",
        )
        taken.add([], snap.taken)
        failures = _counter(
            "metrics_refresh_failures", "Snapshot reads that failed (the previous one stays)."
        )
        failures.add([], float(self.refresh_failures))
        return iter((info, taken, failures))

    def _sources(self, snap: Snapshot) -> Iterator[Family]:
        label = ["source"]
        connected = _gauge("source_connected", "1 while the source is connected.", label)
        reads = _counter("source_reads", "Poll ticks that read the source.", label)
        samples = _counter("source_samples", "Samples read (GOOD and BAD).", label)
        skipped = _counter("source_skipped_ticks", "Ticks skipped after a read overran.", label)
        outages = _counter("source_outages", "Connections lost (or never made).", label)
        for source, stats in self.view.polls:
            name = [source.config.name]
            connected.add(name, float(stats.connected))
            reads.add(name, float(stats.reads))
            samples.add(name, float(stats.samples))
            skipped.add(name, float(stats.skipped_ticks))
            outages.add(name, float(stats.outages))
        events = _counter(
            "source_events",
            "A source's own counters (serial: frames, good, ignored, partial, failure"
            " reasons, dropped samples).",
            ["source", "event"],
        )
        for source_name, counts in sorted(snap.source_counters.items()):
            for event, value in sorted(counts.items()):
                events.add([source_name, event], float(value))
        sources = [source for source, _ in self.view.polls]
        links = (*modbus_metrics(sources), *opcua_metrics(sources))
        return iter((connected, reads, samples, skipped, outages, events, *links))

    def _twin(self) -> Iterator[Family]:
        recorder = self.view.recorder
        if recorder is None:
            return iter(())
        written = _counter("twin_samples_written", "Samples written to the twin.")
        written.add([], float(recorder.written))
        failing = _gauge("twin_write_failing", "1 while writes to the twin fail.")
        failing.add([], float(recorder.failing))
        pending = _gauge("twin_pending_samples", "Samples waiting for the next twin flush.")
        pending.add([], float(recorder.waiting + len(recorder.retry)))
        dropped = _counter(
            "twin_samples_dropped", "Samples the twin could not store (disk full, no flush)."
        )
        dropped.add([], float(recorder.store.health.dropped + recorder.dropped))
        errors = _counter("twin_write_errors", "Twin flushes that failed (I/O); each retried.")
        errors.add([], float(recorder.write_errors))
        return iter((written, failing, pending, dropped, errors))

    def _detector(self, snap: Snapshot) -> Iterator[Family]:
        loop = self.view.detect
        if loop is None:
            return iter(())
        alerts = _counter("alerts", "Alert events the detector made.", ["state"])
        alerts.add(["raised"], float(loop.raised))
        alerts.add(["cleared"], float(loop.cleared))
        unsent = _gauge("alerts_unsent", "Alerts held in memory while the outbox refuses them.")
        unsent.add([], float(len(loop.unsent)))
        return iter((alerts, unsent, *_assets(snap)))

    def _outbox(self, snap: Snapshot) -> Iterator[Family]:
        if snap.outbox is None:
            return iter(())
        return iter(_outbox_metrics(snap.outbox, snap.sinks, time.time()))


def _assets(snap: Snapshot) -> list[Family]:
    label = ["asset"]
    health = _gauge("asset_health", "Asset health, 0 (alarm) to 100.", label)
    for asset, value in sorted(snap.health.items()):
        health.add([asset], value)
    score = _gauge("asset_score", "The model's latest anomaly score.", label)
    threshold = _gauge("asset_score_threshold", "The score above which it alarms.", label)
    scored_at = _gauge("asset_score_timestamp_seconds", "End of the last scored window.", label)
    for asset, last in sorted(snap.scores.items()):
        if last is not None:  # no series before the first window: not a fake 0
            score.add([asset], last.score)
            threshold.add([asset], last.threshold)
            scored_at.add([asset], last.ts)
    return [health, score, threshold, scored_at]


def _outbox_metrics(status: OutboxStatus, sinks: Sequence[str], now: float) -> list[Family]:
    labels = ["sink", "class"]
    rows = _gauge("outbox_backlog_rows", "Rows waiting for a sink.", labels)
    size = _gauge("outbox_backlog_bytes", "Bytes waiting for a sink (with row overhead).", labels)
    age = _gauge("outbox_oldest_age_seconds", "Age of the oldest waiting row (0: none).", labels)
    found = {(b.sink, b.kind): b for b in status.backlog}
    for sink in sorted(set(sinks) | {s for s, _ in found}):
        for kind in CLASSES.values():
            backlog = found.get((sink, kind))
            oldest = backlog.oldest if backlog is not None else None
            rows.add([sink, kind], float(backlog.rows if backlog else 0))
            size.add([sink, kind], float(backlog.bytes if backlog else 0))
            age.add([sink, kind], max(0.0, now - oldest) if oldest is not None else 0.0)
    dropped = _counter("outbox_dropped", "Rows dropped to keep the bound.", labels)
    rejected = _counter("outbox_rejected", "Rows the sink refused (deleted).", ["sink"])
    for sink in sorted(set(sinks) | set(status.counters)):
        counts = status.counters.get(sink, {})
        for kind in CLASSES.values():
            dropped.add([sink, kind], float(counts.get(f"dropped_{kind}", 0)))
        rejected.add([sink], float(counts.get("rejected", 0)))
    return [rows, size, age, dropped, rejected]


def exposition(collector: AgentCollector) -> bytes:
    """The text of one ``/metrics`` scrape: the agent's families, then the process's."""
    return render(chain(collector.collect(), process_families()))
