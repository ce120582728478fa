"""Wiring: one event loop, one TaskGroup, every stage in its place.

A poll loop per source feeds the recorder (twin + windows); the detector loop
turns windows into alerts in the durable outbox; a delivery loop per sink
drains it. SIGTERM/SIGINT cancel the main task: the recorder flushes, every
``async with`` closes its connection, the databases close, systemd hears STOPPING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from edge_agent import gc_pause, heap
from edge_agent.commands.attach import OutboxAudit, attach_commands
from edge_agent.config import AgentConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.forward.delivery import LinkState, Sink
from edge_agent.forward.live import attach_live, live_sinks
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import adopt_legacy_open_alerts, requeue_spill
from edge_agent.metrics import AgentCollector, AgentView
from edge_agent.notify import Notifier
from edge_agent.observer import Observer
from edge_agent.preflight import load_detector
from edge_agent.registry import build_sink, build_source
from edge_agent.reload import Running
from edge_agent.sources.poll import Source
from edge_agent.storage_guard import open_outbox, open_twin
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import SignalInfo
from edge_agent.web.alerts import OutboxAlerts
from edge_agent.web.config import load_token
from edge_agent.web.server import serve_web_forever
from edge_agent.web.site import Site
from edge_agent.wiring import catalogue, restore_open_alerts, warm_windows
from edge_agent.worker import Worker

log = logging.getLogger(__name__)

STOP_GRACE = 5.0
"""Seconds after SIGTERM before the agent is cancelled once more (systemd waits 10)."""


async def run_agent(config: AgentConfig, observer: Observer | None = None) -> None:
    """Run until cancelled. Raises ModelError/ConfigError at startup, before READY."""
    notifier = Notifier.from_env()
    heap.one_arena()  # before the worker thread's first allocation (edge_agent.heap)
    heap.fixed_thresholds()  # big blocks stay out of the heap (edge_agent.heap)
    worker = Worker(after_job=heap.Trimmer())
    try:
        await _run(config, worker, notifier, observer)
    finally:
        notifier.send("STOPPING=1")
        worker.close()


async def _run(
    config: AgentConfig, worker: Worker, notifier: Notifier, observer: Observer | None
) -> None:
    detector = await worker.run(load_detector, config)  # the same checks as check-config
    sources = [build_source(c) for c in config.sources]
    sinks = [_make_sink(config, c) for c in config.sinks]
    config.data_path(".").mkdir(parents=True, exist_ok=True)
    # Closed in reverse order, each even if the one before failed.
    async with AsyncExitStack() as closing:
        # A damaged file is set aside and replaced, never a reason to exit (storage_guard).
        store = await worker.run(open_twin, config.data_path(config.twin.path), config.twin)
        closing.push_async_callback(worker.run, store.close)
        sink_names = [s.name for s in config.sinks]
        path = config.data_path(config.outbox.path)
        outbox = await worker.run(open_outbox, path, config.outbox, sink_names, config.agent.id)
        closing.push_async_callback(worker.run, outbox.close)
        await _requeue_spill(worker, _spill_path(config), outbox, config.agent.id)
        legacy = config.data_path("open-alerts.json")
        await worker.run(adopt_legacy_open_alerts, legacy, outbox)
        await _restore_open_alerts(worker, detector, outbox, config.agent.id)
        # One catalogue: the store, the live sinks and the commands keep its SignalInfos.
        infos = catalogue(sources, detector)
        windows = await _prepare(worker, store, detector, infos)
        stages = (store, windows, detector, outbox)
        await _supervise(config, worker, notifier, observer, stages, (sources, infos), sinks)


async def _requeue_spill(worker: Worker, path: Path, outbox: Outbox, gateway: str) -> None:
    """Alerts refused at the last stop go first; if the outbox refuses again, they stay put."""
    try:
        await worker.run(requeue_spill, path, outbox, gateway)
    except Exception as exc:
        log.error("cannot re-queue the alerts kept in %s (the file stays): %s", path, exc)


async def _restore_open_alerts(
    worker: Worker, detector: Detector, outbox: Outbox, gateway: str
) -> None:
    """Alerts open when the last run ended (however it ended) are watched again."""
    now = time.time()
    alerts, orphans = await worker.run(restore_open_alerts, detector, outbox, gateway, now)
    if alerts:
        log.info(
            "detect: %d alert(s) still open from the last run (%d no longer configured, cleared)",
            len(alerts), len(orphans),
        )  # fmt: skip


async def _prepare(
    worker: Worker, store: SignalStore, detector: Detector, infos: list[SignalInfo]
) -> Windows:
    await worker.run(store.register, infos)
    return await worker.run(warm_windows, store, detector, infos, time.time())


async def _supervise(
    config: AgentConfig,
    worker: Worker,
    notifier: Notifier,
    observer: Observer | None,
    stages: tuple[SignalStore, Windows, Detector, Outbox],
    signals: tuple[list[Source], list[SignalInfo]],
    sinks: list[Sink],
) -> None:
    store, windows, detector, outbox = stages
    sources, infos = signals
    # Sinks that publish values as they change (sparkplug) see every recorded batch.
    observer = attach_live(sinks, infos, observer)
    token = load_token(config.web)
    recorder = Recorder(store, windows, worker, config.twin.flush_interval, observer)
    wakes: dict[str, asyncio.Event] = {}
    detect = DetectorLoop(
        detector,
        windows,
        outbox,
        worker,
        config.agent.id,
        config.detect.interval,
        lambda: _wake_all(wakes),
        observer,
        recorder=recorder,
        spill=_spill_path(config),
        requests=config.data_path(config.outbox.path),
    )
    audit = OutboxAudit(outbox, worker.run, config.agent.id, infos, lambda: _wake_all(wakes))
    commands = attach_commands(config.writes, sources, sinks, infos, audit)
    try:
        async with asyncio.TaskGroup() as tasks:
            running = Running(config, config.file, tasks, worker, store, outbox, recorder,
                              detect, _make_sink, live_sinks(sinks), wakes=wakes,
                              commands=commands, audit=audit)  # fmt: skip
            view = AgentView(config.agent.id, running.polls, recorder, detect, outbox)
            site = _site_view(config, worker, view, running.links)
            for source in sources:
                running.start_source(source)
            tasks.create_task(serve_web_forever(config.web, site, token))
            tasks.create_task(recorder.record_forever())
            tasks.create_task(detect.detect_forever())
            for sink in sinks:
                running.start_sink(sink)
            tasks.create_task(_watchdog_forever(notifier, worker))
            _on_hangup(lambda: tasks.create_task(running.reload()))
            notifier.send("READY=1")
            gc_pause.resume()  # `run` paused it for the start (gc_pause.py says why)
            log.info("agent %s running: %d source(s), %d sink(s)",
                     config.agent.id, len(sources), len(sinks))  # fmt: skip
    finally:
        _on_hangup(_hangup)


def _site_view(
    config: AgentConfig,
    worker: Worker,
    view: AgentView,
    links: dict[str, LinkState],
) -> Site:
    """What the page, the API and /metrics read: the live stages, never a copy of their data."""
    assert view.detect is not None and view.recorder is not None
    alerts = OutboxAlerts(view.detect.outbox, worker.run, config.web.alert_history)
    collector = AgentCollector(view)
    store = view.recorder.store
    return Site(config, collector, store, worker.run, alerts, links, config.metrics.refresh)


def _spill_path(config: AgentConfig) -> Path:
    """Where alerts the outbox refused at stop wait for the next start."""
    return config.data_path("unsent-alerts.json")


def _sink_paths(config: AgentConfig, sink: Any) -> Any:
    """A sink's relative data files (JSONL output, Sparkplug bdSeq) live in the data folder."""
    if sink.type == "jsonl":
        return sink.model_copy(update={"path": str(config.data_path(sink.path))})
    if sink.type == "sparkplug":  # bdSeq survives restarts in the data folder
        state = sink.state_file or f"sparkplug-{sink.name}.json"
        return sink.model_copy(update={"state_file": str(config.data_path(state))})
    return sink


def _make_sink(config: AgentConfig, sink: Any) -> Any:
    """The sink of ``sink``'s config, its files in the data folder (at start and at reload)."""
    return build_sink(_sink_paths(config, sink), config.agent.id)


def _wake_all(wakes: dict[str, asyncio.Event]) -> None:
    for wake in wakes.values():
        wake.set()


async def _watchdog_forever(notifier: Notifier, worker: Worker) -> None:
    """Feed systemd's watchdog while the loop AND the worker thread answer.

    A hung SD card blocks the worker thread, not the loop: pinging from the loop
    alone would keep a stuck agent alive forever.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    stuck = False
    while True:
        try:
            # Not wait_for: on 3.11 it can eat the stop that comes with the answer.
            async with asyncio.timeout(interval):
                await worker.run(_alive)
        except TimeoutError:
            if not stuck:
                log.error("database thread stuck for %.0f s: not feeding the watchdog", interval)
            stuck = True
        else:
            stuck = False
            notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)


def _alive() -> None:
    """A no-op job: it returns as soon as the worker thread is free."""


def _hangup() -> None:
    log.warning("SIGHUP: the agent is starting or stopping: not reloading")


def _on_hangup(handler: Callable[[], object]) -> None:
    """What SIGHUP does now: reload while the agent runs, a warning before and after.

    SIGHUP's default action ends the process, and systemd does not restart a
    service killed by HUP: a handler must be in place from the first moment.
    """
    with contextlib.suppress(RuntimeError):  # the loop is closing: nothing to reload
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on a new event loop; SIGTERM and SIGINT cancel it cleanly."""

    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)

        def stop() -> None:
            # Only the first signal cancels: a second one must not cut the clean-up short.
            for signum in signals:
                loop.add_signal_handler(signum, log.warning, "already stopping")
            task.cancel()
            loop.call_later(STOP_GRACE, cancel_again)

        def cancel_again() -> None:
            # A library that swallowed the cancel must not keep the agent up until SIGKILL.
            # A TaskGroup already aborting does not pass a second cancel on to its tasks
            # (3.11), so every task still running gets one of its own.
            if not task.done():
                log.warning("still stopping after %.0f s: cancelling again", STOP_GRACE)
                for running in asyncio.all_tasks(loop):
                    running.cancel()

        for signum in signals:
            loop.add_signal_handler(signum, stop)
        # Until the agent runs (and again while it stops), SIGHUP only says so.
        loop.add_signal_handler(signal.SIGHUP, _hangup)
        try:
            await main
        except asyncio.CancelledError:
            log.info("stopping on signal")

    asyncio.run(runner())
