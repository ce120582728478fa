"""What the API returns, read from the live agent: the twin, the poll loops, the sinks, alerts.

Every value comes from where the agent keeps it: latest values, history and
rollups from the twin (:class:`~edge_agent.twin.store.SignalStore`, on the
worker thread that owns it), link states and counters from the poll loops'
:class:`~edge_agent.sources.poll.PollStats` and the delivery loops'
:class:`~edge_agent.forward.delivery.LinkState` (plain attributes assigned on
this event loop), the outbox backlog from the metrics snapshot, health and
scores from the detector (worker thread), alerts through an
:class:`~edge_agent.web.alerts.AlertView`. Nothing here keeps a copy of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent import __version__
from edge_agent.forward.delivery import LinkState
from edge_agent.forward.outbox_status import OutboxStatus
from edge_agent.logs import Transition
from edge_agent.metrics import AgentCollector, take_snapshot
from edge_agent.metrics_links import opcua_record, unit_records
from edge_agent.schema import plain
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.registers import RegisterTable
from edge_agent.twin.signal_status import SignalStatus
from edge_agent.twin.store import SignalStore
from edge_agent.web.alerts import AlertView, alert_record, listing

if TYPE_CHECKING:  # named in SiteConfig only
    from edge_agent.detect.config import DetectConfig

log = logging.getLogger(__name__)
Run = Callable[..., Awaitable[Any]]
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
# A URL's query string often carries a webhook key; the logs drop it, the page hides it.
_QUERY = re.compile(r"(?<=://)([^\s?#]*)\?[^\s#]*")


class _Identity(Protocol):
    @property
    def id(self) -> str: ...


class _Part(Protocol):
    """A source's or a sink's config, as the site lists it."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


class SiteConfig(Protocol):
    """What the site reads of the agent's config (``AgentConfig`` is one).

    The site is a stage: it is handed the config and never loads one, so it names the
    parts it reads rather than the config module above it. ``plain`` walks the whole
    model for the hash and the redacted copy.
    """

    @property
    def agent(self) -> _Identity: ...

    @property
    def sources(self) -> Sequence[_Part]: ...

    @property
    def sinks(self) -> Sequence[_Part]: ...

    @property
    def detect(self) -> DetectConfig: ...


@dataclass
class Site:
    """The live agent as the API sees it (built by the agent's wiring).

    Attributes:
        config: the effective config.
        collector: the metrics collector (its view holds polls, recorder, detector loop).
        store: the twin, read only through ``run``.
        run: ``worker.run``.
        alerts: where alerts are read.
        links: sink name -> its delivery loop's link state.
        refresh: seconds a metrics snapshot (outbox backlog) is reused.
    """

    config: SiteConfig
    collector: AgentCollector
    store: SignalStore
    run: Run
    alerts: AlertView
    links: Mapping[str, LinkState] = field(default_factory=dict)
    refresh: float = 5.0
    started: float = field(default_factory=time.time)
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _status_read: Transition = field(default_factory=lambda: Transition(log))
    _registers: dict[str, str] | None = None
    _hash: tuple[SiteConfig, str] | None = None

    async def snapshot_fresh(self) -> None:
        """Re-read the outbox/detector snapshot if older than ``refresh`` (only when asked)."""
        async with self._refreshing:
            if time.time() - self.collector.snapshot.taken < self.refresh:
                return
            try:
                self.collector.snapshot = await take_snapshot(self.collector.view, self.run)
            except Exception as exc:  # a locked outbox file must not break the page
                self.collector.refresh_failures += 1
                self._status_read.fail("web: cannot read the outbox/detector status: %s", exc)
            else:
                self._status_read.ok("web: the outbox/detector status is readable again")

    async def status(self) -> dict[str, Any]:
        """``GET /api/v1/status``."""
        await self.snapshot_fresh()
        snap = self.collector.snapshot
        recorder = self.collector.view.recorder
        now = time.time()
        return {
            "agent": {
                "id": self.config.agent.id,
                "version": __version__,
                "started": self.started,
                "uptime_s": now - self.started,
                "config_hash": self.config_hash(),
            },
            "now": now,
            "sources": self._sources(),
            "sinks": self._sinks(snap.outbox, now),
            "twin": {
                "samples_written": recorder.written if recorder else 0,
                "write_failing": bool(recorder.failing) if recorder else False,
                "samples_dropped": self.store.health.dropped,
            },
            "open_alerts": len(await self.alerts.open()),
            "snapshot_at": snap.taken,
        }

    def _sources(self) -> list[dict[str, Any]]:
        out = []
        for source, stats in self.collector.view.polls:
            config = source.config
            out.append(
                {
                    "name": config.name,
                    "type": config.type,
                    "interval_s": float(config.interval),
                    "link": "up" if stats.connected else "down",
                    "last_error": stats.last_error,
                    "last_error_at": stats.last_error_at,
                    "last_good_read_at": stats.last_read_at,
                    "read_ms": round(stats.read_seconds * 1000, 3),
                    "reads": stats.reads,
                    "samples": stats.samples,
                    "skipped_ticks": stats.skipped_ticks,
                    "outages": stats.outages,
                    "units": unit_records(source),
                    "opcua": opcua_record(source),
                }
            )
        return out

    def _sinks(self, outbox: OutboxStatus | None, now: float) -> list[dict[str, Any]]:
        out = []
        for sink in self.config.sinks:
            link = self.links.get(sink.name, LinkState())
            backlog = [b for b in outbox.backlog if b.sink == sink.name] if outbox else []
            oldest = min((b.oldest for b in backlog if b.oldest is not None), default=None)
            counts = outbox.counters.get(sink.name, {}) if outbox else {}
            out.append(
                {
                    "name": sink.name,
                    "type": sink.type,
                    "connection": "connected" if link.connected else "disconnected",
                    "last_error": link.last_error,
                    "last_error_at": link.last_error_at,
                    "delivered_at": link.delivered_at,
                    "backlog_rows": sum(b.rows for b in backlog),
                    "oldest_age_s": None if oldest is None else max(0.0, now - oldest),
                    "dropped": sum(v for k, v in counts.items() if k.startswith("dropped_")),
                    "rejected": counts.get("rejected", 0),
                }
            )
        return out

    async def signals(self) -> dict[str, Any]:
        """``GET /api/v1/signals``: the twin's latest-value view."""
        now = time.time()
        rows: list[SignalStatus] = await self.run(self.store.status, now)
        if self._registers is None:  # the config does not change while the agent runs
            self._registers = modbus_registers(self.config)
        registers, words = self._registers, self._raw_words()
        return {"now": now, "signals": [signal_record(r, registers, words) for r in rows]}

    def _raw_words(self) -> dict[str, list[int]]:
        """The register words behind each Modbus value, as its source last read them."""
        words: dict[str, list[int]] = {}
        for source, _ in self.collector.view.polls:
            raw_words = getattr(source, "raw_words", None)
            if raw_words is not None:
                words.update(raw_words())
        return words

    async def history(
        self, name: str, since: float, until: float | None, rollups: bool
    ) -> dict[str, Any] | None:
        """``GET /api/v1/signals/{name}/history``; None for an unknown signal."""
        infos = {i.signal: i for i in await self.run(self.store.signals)}
        info = infos.get(name)
        if info is None:
            return None
        head = {"signal": name, "unit": info.unit, "since": since, "until": until}
        if rollups:
            rows = await self.run(self.store.rollups, name, since, until)
            cols = ("ts", "min", "max", "mean", "last", "count", "bad")
            return head | {"rollups": True} | {c: [getattr(r, c) for r in rows] for c in cols}
        samples = await self.run(self.store.history, name, since, until)
        return head | {
            "rollups": False,
            "ts": [s.ts for s in samples],
            "value": [s.value for s in samples],
            "quality": [str(s.quality) for s in samples],
        }

    async def assets(self) -> dict[str, Any]:
        """``GET /api/v1/assets``: health, score, threshold, open alerts."""
        detector = self.collector.view.detect
        if detector is None:
            return {"assets": []}
        health, scores = await self.run(lambda: (detector.detector.health(), _scores(detector)))
        open_alerts = [alert_record(a, True) for a in await self.alerts.open()]
        return {"assets": asset_records(self.config, health, scores, open_alerts)}

    async def alert_list(self, state: str) -> dict[str, Any]:
        """``GET /api/v1/alerts?state=open|all``."""
        return {"state": state, "alerts": await listing(self.alerts, state == "all")}

    def effective_config(self) -> dict[str, Any]:
        """``GET /api/v1/config``: the config as loaded, secrets redacted."""
        return {"config_hash": self.config_hash(), "config": redacted(self.config)}

    def config_hash(self) -> str:
        """:func:`config_hash` of the config, computed once (the page asks every few seconds)."""
        if self._hash is None or self._hash[0] is not self.config:
            self._hash = (self.config, config_hash(self.config))
        return self._hash[1]


def _scores(loop: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for name, last in loop.detector.scores().items():
        if last is not None:
            out[name] = {
                "score": last.score,
                "threshold": last.threshold,
                "alarm": last.alarm,
                "ts": last.ts,
            }
    return out


def asset_records(
    config: SiteConfig,
    health: Mapping[str, float],
    scores: Mapping[str, dict[str, Any]],
    open_alerts: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One record per asset: models' and rules' assets together, by name."""
    models = {a.name: a for a in config.detect.assets}
    rules: dict[str, list[str]] = {}
    for rule in config.detect.rules:
        rules.setdefault(rule.asset_name, []).append(rule.name)
    out = []
    for name in sorted(set(health) | set(models) | set(rules)):
        model = models.get(name)
        scored = scores.get(name, {})
        out.append(
            {
                "name": name,
                "health": health.get(name),
                "score": scored.get("score"),
                "threshold": scored.get("threshold"),
                "alarm": scored.get("alarm"),
                "scored_at": scored.get("ts"),
                "mode": model.mode if model else None,
                "signals": list(model.signals) if model else [],
                "rules": rules.get(name, []),
                "open_alerts": [a for a in open_alerts if a["asset"] == name],
            }
        )
    return out


def signal_record(
    row: SignalStatus, registers: Mapping[str, str], words: Mapping[str, list[int]]
) -> dict[str, Any]:
    """The API's shape of one latest value."""
    sample = row.sample
    return {
        "name": row.info.signal,
        "value": None if sample is None else sample.value,
        "unit": row.info.unit,
        "quality": None if sample is None else str(sample.quality),
        "ts": None if sample is None else sample.ts,
        "age_s": row.age,
        "stale": row.stale,
        "source": row.info.source,
        "asset": row.info.asset,
        "description": row.info.description,
        "register": registers.get(row.info.signal),
        "words": words.get(row.info.signal),
    }


def modbus_registers(config: SiteConfig) -> dict[str, str]:
    """Signal -> where a Modbus value comes from (``unit 1 holding 100 float32 ABCD``)."""
    out = {}
    for source in config.sources:
        if not isinstance(source, ModbusSourceConfig):
            continue
        for name, address, reg in RegisterTable.of(source.registers).rows():
            unit = reg.device_id if reg.device_id is not None else source.device_id
            text = f"unit {unit} {reg.table} {address} {reg.data_type}"
            if reg.width > 1:
                text += f" {reg.byte_order} ({reg.width} registers)"
            if reg.bit is not None:
                text += f" bit {reg.bit}"
            if reg.scale != 1.0:
                text += f" x{reg.scale:g}"
            if reg.offset != 0.0:
                text += f" {reg.offset:+g}"
            out[f"{source.name}.{name}".lower()] = text  # source.signal_name, per row
    return out


def config_hash(config: SiteConfig) -> str:
    """A short hash of the effective config (secrets enter as their redacted form)."""
    text = json.dumps(plain(config), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def redacted(config: SiteConfig) -> dict[str, Any]:
    """The config as JSON: secrets, and user:password and query strings in URLs, redacted."""
    return _scrub(plain(config))  # type: ignore[no-any-return]


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return _QUERY.sub(r"\1?**********", _USERINFO.sub("**********@", value))
    return value
