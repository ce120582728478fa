"""``/metrics`` of the site view, scraped over real HTTP while real stages run.

The agent serves ``/metrics`` from its web server (``web.listen``); these tests
run that server in the test's event loop on a free loopback port and read the
answer with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

import edge_agent.sim
from edge_agent import __version__
from edge_agent.config import AgentConfig, MetricsConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.metrics import AgentCollector, AgentView
from edge_agent.registry import build_source
from edge_agent.sim.plant import Plant
from edge_agent.sources.poll import PollStats, Source, poll_forever
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.web.alerts import StoredAlerts
from edge_agent.web.config import WebConfig
from edge_agent.web.openapi import document
from edge_agent.web.server import serve_web_forever
from edge_agent.web.site import Site
from edge_agent.worker import Worker
from tests.forward.factory import make_alert
from tests.web.test_api import valid

ALERT = {"class": "alert"}
TELEMETRY = {"class": "telemetry"}
DEMO_MODEL = Path(edge_agent.sim.__file__).parent / "demo_pump.onnx"
DEMO_CARD = json.loads(DEMO_MODEL.with_suffix(".card.json").read_text())
REFRESH = 0.1
"""Seconds a snapshot is reused (the agent's default is 5 s; the tests would wait)."""
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Always true on the plant: the alert is raised at the first detector step.
ALWAYS = {
    "name": "running",
    "type": "threshold",
    "signal": "pump1.motor_current",
    "asset": "pump1",
    "above": -1.0e9,
}


def scrape(port: int) -> Series:
    """GET /metrics and parse it with prometheus_client's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status(port: int) -> dict[str, Any]:
    """GET /api/v1/status, checked against the OpenAPI document's schema."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5) as reply:
        return valid(document(), "/api/v1/status", json.loads(reply.read()))  # type: ignore[no-any-return]


def value(series: Series, name: str, **labels: str) -> float:
    """One series' value (KeyError when absent)."""
    return series[(name, tuple(sorted(labels.items())))]


async def until(port: int, check: Callable[[Series], bool], within: float = 20.0) -> Series:
    """Scrape until ``check`` holds (a missing series counts as not yet)."""
    deadline = time.monotonic() + within
    while True:
        series = await asyncio.to_thread(scrape, port)
        try:
            if check(series):
                return series
        except KeyError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last scrape: {sorted(series)[:50]}")
        await asyncio.sleep(0.1)


async def listening(port: int, within: float = 10.0) -> None:
    """Wait until the server accepts connections."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return


@asynccontextmanager
async def serving(
    view: AgentView, store: SignalStore, worker: Worker, port: int
) -> AsyncIterator[Site]:
    """The site view's server as the agent runs it (no token, loopback): a task, cancelled.

    The alert view is never read by ``/metrics``; it points at a file that is not there.
    """
    alerts = StoredAlerts(Path("/nonexistent/outbox.db"))
    site = Site(AgentConfig(), AgentCollector(view), store, worker.run, alerts, refresh=REFRESH)
    web = WebConfig(listen=f"127.0.0.1:{port}")
    task = asyncio.create_task(serve_web_forever(web, site, None))
    try:
        await listening(port)
        yield site
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def serving_sources(
    sources: list[Source], folder: Path, port: int
) -> AsyncIterator[list[PollStats]]:
    """The site view serving ``sources`` (each with the PollStats yielded) on ``port``.

    The test drives the sources itself (``poll_forever`` or ``read()``).
    """
    worker = Worker()
    store = SignalStore.open(folder / "twin.db", TwinConfig())
    polls = [(source, PollStats()) for source in sources]
    try:
        async with serving(AgentView("gw-test", polls), store, worker, port):
            yield [stats for _, stats in polls]
    finally:
        store.close()
        worker.close()


def _agent_config(plant: Plant, folder: Path) -> AgentConfig:
    model = {"name": "pump1", "model": str(DEMO_MODEL), "signals": DEMO_CARD["signals"]}
    return AgentConfig.model_validate(
        {
            "agent": {"id": "gw-test", "data_dir": str(folder)},
            "sources": plant.source_configs("200ms"),
            "detect": {"interval": "200ms", "assets": [model], "rules": [ALWAYS]},
        }
    )


async def test_scrape_follows_the_flow(tmp_path: Path, port: int) -> None:
    worker = Worker()
    async with Plant(scenario="normal", opcua=False, serial=True, probe_interval=0.2) as plant:
        config = _agent_config(plant, tmp_path)
        detector = Detector.load(config.detect, config.config_path)
        store = SignalStore.open(tmp_path / "twin.db", config.twin)
        outbox = Outbox.open(tmp_path / "outbox.db", config.outbox, ["up"])
        try:
            await _run_stages(config, worker, port, (detector, store, outbox))
        finally:
            outbox.close()
            store.close()
            worker.close()


async def _run_stages(
    config: AgentConfig, worker: Worker, port: int, stages: tuple[Detector, SignalStore, Outbox]
) -> None:
    """Wired as agent.py wires them (no delivery loop: alerts stay in the outbox)."""
    detector, store, outbox = stages
    sources = [build_source(c) for c in config.sources]
    store.register([i for s in sources for i in s.signals()] + detector.signal_infos())
    windows = Windows(capacity=256)
    recorder = Recorder(store, windows, worker, 0.2)
    detect = DetectorLoop(detector, windows, outbox, worker, "gw-test", 0.2, lambda: None)
    polls = [(source, PollStats()) for source in sources]
    view = AgentView("gw-test", polls, recorder, detect, outbox)
    tasks = [asyncio.create_task(poll_forever(s, recorder.accept, st)) for s, st in polls]
    tasks += [asyncio.create_task(recorder.record_forever())]
    tasks += [asyncio.create_task(detect.detect_forever())]
    try:
        async with serving(view, store, worker, port):
            await _check_flow(port, detect)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _check_flow(port: int, detect: DetectorLoop) -> None:
    first = await until(
        port, lambda s: value(s, "edge_agent_source_samples_total", source="pump1") > 0
    )
    assert value(first, "edge_agent_info", gateway="gw-test", version=__version__) == 1.0
    assert value(first, "edge_agent_source_connected", source="pump1") == 1.0
    assert ("process_cpu_seconds_total", ()) in first
    before = value(first, "edge_agent_source_samples_total", source="pump1")
    recent = time.time() - 60
    later = await until(
        port,
        lambda s: (
            value(s, "edge_agent_source_samples_total", source="pump1") > before
            and value(s, "edge_agent_twin_samples_written_total") > 0
            and value(s, "edge_agent_source_events_total", source="probe", event="good") > 0
            and value(s, "edge_agent_outbox_backlog_rows", sink="up", **ALERT) >= 1
            # the loop counts a raise once the outbox's put returns: a snapshot taken on
            # the worker thread in between sees the row before the count
            and value(s, "edge_agent_alerts_total", state="raised") >= 1
        ),
    )
    assert value(later, "edge_agent_source_reads_total", source="pump1") >= 1
    assert value(later, "edge_agent_source_outages_total", source="pump1") == 0
    assert value(later, "edge_agent_twin_write_failing") == 0
    assert value(later, "edge_agent_twin_samples_dropped_total") == 0
    assert 1 <= value(later, "edge_agent_alerts_total", state="raised") <= detect.raised
    assert value(later, "edge_agent_asset_health", asset="pump1") < 100.0
    assert value(later, "edge_agent_outbox_backlog_rows", sink="up", **TELEMETRY) == 0
    assert value(later, "edge_agent_outbox_oldest_age_seconds", sink="up", **ALERT) >= 0
    assert value(later, "edge_agent_metrics_snapshot_timestamp_seconds") > 0
    # The model scores its first window once it holds `window` steps of history.
    scored = await until(port, lambda s: ("edge_agent_asset_score", (("asset", "pump1"),)) in s)
    threshold = value(scored, "edge_agent_asset_score_threshold", asset="pump1")
    assert threshold == pytest.approx(DEMO_CARD["threshold"])
    assert value(scored, "edge_agent_asset_score", asset="pump1") >= 0
    assert value(scored, "edge_agent_asset_score_timestamp_seconds", asset="pump1") > recent


def _empty_twin(folder: Path) -> SignalStore:
    """The twin the site view needs beside an outbox-only view (``/metrics`` never reads it)."""
    return SignalStore.open(folder / "twin.db", TwinConfig())


async def test_outbox_drops_and_rejects_per_sink(tmp_path: Path, port: int) -> None:
    worker = Worker()
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(max_rows=2), ["a", "b"])
    store = _empty_twin(tmp_path)
    try:
        outbox.put_alerts([make_alert(n) for n in range(5)], "gw-test")
        async with serving(AgentView("gw-test", outbox=outbox), store, worker, port):
            first = await until(port, lambda s: ("edge_agent_outbox_rejected_total", ()) not in s)
            assert value(first, "edge_agent_outbox_dropped_total", sink="a", **ALERT) == 3
            assert value(first, "edge_agent_outbox_backlog_rows", sink="b", **ALERT) == 2
            assert value(first, "edge_agent_outbox_rejected_total", sink="a") == 0
            batch = await worker.run(outbox.take, "a", 10)
            await worker.run(outbox.reject, "a", batch)
            after = await until(
                port, lambda s: value(s, "edge_agent_outbox_rejected_total", sink="a") == 2
            )
            assert value(after, "edge_agent_outbox_backlog_rows", sink="a", **ALERT) == 0
            assert value(after, "edge_agent_outbox_rejected_total", sink="b") == 0
            assert value(after, "edge_agent_outbox_backlog_bytes", sink="b", **ALERT) > 0
    finally:
        outbox.close()
        store.close()
        worker.close()


async def test_an_idle_agent_is_reported(tmp_path: Path, port: int) -> None:
    """No source, no detector, no outbox: the agent and process series, no stage series."""
    worker = Worker()
    store = _empty_twin(tmp_path)
    try:
        async with serving(AgentView("gw-test"), store, worker, port):
            series = await until(port, lambda s: value(s, "edge_agent_info", gateway="gw-test",
                                                       version=__version__) == 1.0)  # fmt: skip
    finally:
        store.close()
        worker.close()
    assert ("process_cpu_seconds_total", ()) in series
    assert value(series, "edge_agent_metrics_refresh_failures_total") == 0
    assert not [name for name, _ in series if name.startswith("edge_agent_outbox_")]


async def test_unreadable_outbox_counted_and_logged_once(
    tmp_path: Path, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.web.site")
    worker = Worker()
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["a"])
    store = _empty_twin(tmp_path)
    try:
        async with serving(AgentView("gw-test", outbox=outbox), store, worker, port):
            await until(
                port, lambda s: value(s, "edge_agent_metrics_snapshot_timestamp_seconds") > 0
            )
            await worker.run(outbox.close)  # status() now raises sqlite3.ProgrammingError
            last = await until(
                port, lambda s: value(s, "edge_agent_metrics_refresh_failures_total") >= 3
            )
            # The last good snapshot is still served.
            assert value(last, "edge_agent_outbox_backlog_rows", sink="a", **ALERT) == 0
    finally:
        store.close()
        worker.close()
    assert caplog.text.count("cannot read the outbox") == 1


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:9108", ":9108", "192.168.1.10:9108", "[::]:9108", "gateway.local:9108"]
)
def test_remote_address_refused_unless_allowed(listen: str) -> None:
    with pytest.raises(ValidationError, match="not loopback"):
        MetricsConfig(listen=listen)
    assert MetricsConfig(listen=listen, allow_remote=True).allow_remote


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:9108", "127.0.0.2:9108", "[::1]:9108", "localhost:1"]
)
def test_loopback_accepted(listen: str) -> None:
    assert MetricsConfig(listen=listen).listen == listen


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x"])
def test_bad_listen_refused(listen: str) -> None:
    with pytest.raises(ValidationError, match="host:port"):
        MetricsConfig(listen=listen)


def test_refresh_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="refresh"):
        MetricsConfig.model_validate({"listen": "127.0.0.1:9108", "refresh": "0s"})
