"""The Detector: every asset's model and every rule, one step at a time.

:meth:`Detector.step` is synchronous and is called every ``detect.interval``
with the windows and the time; it returns the raise and clear events since the
last step. The same call is used live (agent) and by ``edge-agent replay``, so
a replay of recorded samples gives the alerts the agent would have sent.

Health (0-100 per asset, :meth:`Detector.health`): 100 when the latest score
is 0, 50 at the threshold, 0 at twice the threshold, then capped by the open
alerts of the asset (info 90, warning 50, critical 20). An asset with rules
only starts at 100. :meth:`Detector.samples` gives score, alarm and health as
samples of ``detect.<asset>.score|alarm|health`` for the twin, shadow assets
included (that is how shadow mode is recorded).

Remaining life (:mod:`edge_agent.detect.prognosis`): an asset whose model card
says ``prognostic`` is a prognostic asset (no score, no alarm): each complete
window gives ``detect.<asset>.rul``. An anomaly asset with a ``prognosis:``
section also keeps the trend of its health index: ``detect.<asset>.rul``,
``rul_low`` and ``rul_high`` (seconds to the alarm threshold). Each asset's
latest prognosis is due upstream every ``prognosis.every``
(:meth:`Detector.prognoses`).

Operator requests (:meth:`Detector.apply`: acknowledge, shelve, unshelve) name
an open alert by its id (or a unique prefix of it) and return the update event.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.detect.align import SeriesSource
from edge_agent.detect.asset import AssetDetector, Scored
from edge_agent.detect.config import AssetConfig, DetectConfig
from edge_agent.detect.lifecycle import Tracker
from edge_agent.detect.requests import Request
from edge_agent.detect.rule_batch import RuleBatch
from edge_agent.detect.rules import Rule
from edge_agent.detect.runstate import RunState
from edge_agent.detect.slot import Loaded, LoadedPrognostic, ModelSlot, file_key, watched
from edge_agent.errors import ModelError
from edge_agent.types import Alert, AlertState, Quality, Sample, Severity, SignalInfo

if TYPE_CHECKING:  # imported by a config with a model or a prognosis (about 6 ms at start)
    from edge_agent.detect.prognosis import HealthTrend, Prognosis, PrognosticAsset

log = logging.getLogger(__name__)

SOURCE = "detect"
DEFAULT_EVERY = 60.0
"""Seconds between prognosis messages of an asset without a ``prognosis:`` section."""
_CAPS = {Severity.INFO: 90.0, Severity.WARNING: 50.0, Severity.CRITICAL: 20.0}


class Detector:
    """Models and rules over the windows; synchronous, used from one thread."""

    def __init__(
        self,
        config: DetectConfig,
        assets: list[AssetDetector],
        rules: list[Rule],
        prognostic: Sequence[PrognosticAsset] = (),
    ) -> None:
        self.config = config
        self.assets = {a.config.name: a for a in assets}
        self.prognostic = {p.config.name: p for p in prognostic}
        self.trends = _trends(assets)
        self.latest: dict[str, Prognosis] = {}
        self._outgoing: list[Prognosis] = []
        self._due: dict[str, float] = {}
        self._fresh: dict[str, Sample] = {}
        self._health: dict[str, float] = {}
        for rule in rules:
            # A rule without its own run-state follows its asset's.
            owner = self.assets.get(rule.config.asset_name)
            if rule.run is None and owner is not None:
                rule.run = owner.run
        chatter = config.alarms.chatter()
        for asset in assets:
            asset.tracker.chatter = chatter
        for rule in rules:
            rule.tracker.chatter = chatter
        self.rules = rules  # after the run-states: the batch plans by them

    @property
    def rules(self) -> list[Rule]:
        """The rules, in the order their events come."""
        return self._batch.rules

    @rules.setter
    def rules(self, rules: list[Rule]) -> None:
        self._batch = RuleBatch(rules)

    @classmethod
    def load(
        cls,
        config: DetectConfig,
        resolve: Callable[[str], Path],
        locate: Callable[[int], str] | None = None,
    ) -> Detector:
        """Load and check every model: the one loader of ``run``, ``check-config`` and ``replay``.

        Args:
            config: the assets and rules.
            resolve: the path of an asset's ``model:`` value.
            locate: ``file:line: detect.assets[N].model`` of the asset at index N,
                put before the message of a ModelError (``run``, ``check-config``,
                a reload: :func:`edge_agent.preflight.load_detector`). None leaves
                the message as the model's loader wrote it (``replay``: its config
                holds the replayed asset only, so N is not the asset's index in the file).

        Raises:
            ModelError: a model file missing or corrupt, or not matching its asset.
        """
        assets, prognostic = [], []
        models: Loaded = {}  # assets that name one file share its model
        prognostic_models: LoadedPrognostic = {}
        for index, asset in enumerate(config.assets):
            try:
                loaded = load_asset(asset, resolve(asset.model), models, prognostic_models)
            except ModelError as exc:
                if locate is None:
                    raise
                raise ModelError(f"{locate(index)}: {exc}") from exc
            if isinstance(loaded, AssetDetector):
                assets.append(loaded)
            else:
                prognostic.append(loaded)
        return cls(config, assets, [Rule(r) for r in config.rules], prognostic)

    def signals(self) -> set[str]:
        """Every signal the windows must keep."""
        needed = {s for a in self.assets.values() for s in a.config.signals}
        needed |= {s for p in self.prognostic.values() for s in p.signals}
        runs: list[RunState | None] = [a.run for a in self.assets.values()]
        runs += [r.run for r in self.rules]
        return needed | {r.config.signal for r in self.rules} | {r.signal for r in runs if r}

    def window_seconds(self) -> float:
        """How much history the windows must keep for every model and rule."""
        spans = [a.window_seconds() for a in self.assets.values()]
        spans += [r.window_seconds() for r in self.rules]
        spans += [p.window_seconds() for p in self.prognostic.values()]
        return max(spans, default=0.0) + self.config.interval

    def step(self, windows: SeriesSource, now: float) -> list[Alert]:
        """Evaluate every model and rule at ``now``; the raise/clear events."""
        alerts: list[Alert] = []
        scored = []
        for asset in self.assets.values():
            before = asset.last
            event = asset.step(windows, now)
            if event is not None:
                alerts.append(event)
            if asset.last is not before:
                scored.append(asset)
        alerts += self._batch.step(windows, now)
        self._record(scored, now)
        for name, prognostic in self.prognostic.items():
            self._prognosis(name, prognostic.step(windows, now), now)
        for name, trend in self.trends.items():
            if now >= self._due.get(name, float("-inf")):
                self._prognosis(name, trend.estimate(now), now)
        return alerts

    def prognoses(self) -> list[Prognosis]:
        """Prognoses due upstream since the last call (one per asset per ``every``)."""
        out, self._outgoing = self._outgoing, []
        return out

    def _prognosis(self, name: str, found: Prognosis | None, now: float) -> None:
        if found is None:
            return
        self.latest[name] = found
        for key, value in (("rul", found.rul), ("rul_low", found.low), ("rul_high", found.high)):
            if value is not None:
                self._put(f"{name}.{key}", found.ts, value)
        if now >= self._due.get(name, float("-inf")):
            prognosis = self.config_of(name).prognosis
            self._due[name] = now + (prognosis.every if prognosis else DEFAULT_EVERY)
            self._outgoing.append(found)

    def config_of(self, name: str) -> AssetConfig:
        """The config of an anomaly or prognostic asset."""
        owner = self.assets.get(name) or self.prognostic[name]
        return owner.config

    def open_alerts(self) -> list[Alert]:
        """The raise events of every alert open now (shadow assets excluded).

        The durable copy is the outbox's open-alert state, written with each event;
        :meth:`restore` takes it back at start.
        """
        return [t.open for t in self._trackers().values() if t.open is not None]

    def restore(self, alerts: Iterable[Alert], now: float) -> list[Alert]:
        """Reopen alerts left open by the last run (the outbox's open-alert state).

        Each is cleared under its own id once its condition is seen to have ended;
        while it holds, nothing is raised again. An open alert whose asset or rule is
        no longer configured cannot be watched: its clear is returned, to be stored,
        so upstream is not left with an alert open for good.
        """
        trackers = self._trackers()
        self._batch.unsettle()
        orphans: list[Alert] = []
        for alert in alerts:
            tracker = trackers.get((alert.asset, alert.cause))
            if tracker is not None:
                tracker.restore(alert)
            else:
                orphans.append(_cleared(alert, now, "no longer configured: cleared at start"))
        return orphans

    def apply(self, request: Request, now: float) -> tuple[Alert | None, str]:
        """Apply an operator request to the open alert it names: (event or None, result line)."""
        found = [
            t for t in self._trackers().values() if t.open and t.open.id.startswith(request.alert)
        ]
        if len(found) != 1:
            what = "no open alert" if not found else f"{len(found)} open alerts"
            return None, f"refused: {what} with id {request.alert!r}"
        tracker = found[0]
        self._batch.unsettle()
        by = request.by or "operator"
        if request.action == "ack":
            event = tracker.acknowledge(now, by)
        elif request.action == "shelve":
            until = min(request.until, request.ts + self.config.alarms.max_shelve)
            event = tracker.shelve(now, until, by)
        else:
            event = tracker.unshelve(now, f"unshelved by {by}")
        name = f"{tracker.asset}/{tracker.cause}"
        if event is None:
            return None, f"{name}: nothing to change ({request.action} already in effect)"
        return event, f"{name}: {event.reason}"

    def _trackers(self) -> dict[tuple[str, str], Tracker]:
        out = {(r.tracker.asset, r.tracker.cause): r.tracker for r in self.rules}
        for asset in self.assets.values():
            if asset.config.mode == "live":
                out[(asset.tracker.asset, asset.tracker.cause)] = asset.tracker
        return out

    def scores(self) -> dict[str, Scored | None]:
        """The latest scored window of each asset (None before the first)."""
        return {name: asset.last for name, asset in self.assets.items()}

    def health(self) -> dict[str, float]:
        """Asset -> health 0..100 (see the module docstring)."""
        out: dict[str, float] = {}
        for name, asset in self.assets.items():
            last = asset.last
            ratio = last.score / last.threshold if last is not None else 0.0
            out[name] = 100.0 * min(1.0, max(0.0, 1.0 - 0.5 * ratio))
            if asset.tracker.open is not None and asset.config.mode == "live":
                out[name] = min(out[name], _CAPS[asset.tracker.open.severity])
        for name in self._batch.assets:
            out.setdefault(name, 100.0)  # an asset with rules only
        for rule in self.rules:
            opened = rule.tracker.open
            if opened is not None:
                name = rule.tracker.asset
                out[name] = min(out[name], _CAPS[opened.severity])
        return out

    def samples(self) -> list[Sample]:
        """Score, alarm and health samples made since the last call, for the twin.

        Score and alarm come with each scored window (at its grid time); health
        when it changes (at the step's time), for rule-only assets too.
        """
        fresh, self._fresh = self._fresh, {}
        return list(fresh.values())

    def signal_infos(self) -> list[SignalInfo]:
        """Catalogue entries of the samples :meth:`samples` produces."""
        keys = [f"{name}.{what}" for name in self.assets for what in ("score", "alarm")]
        keys += [f"{name}.health" for name in self.health()]
        keys += [f"{name}.rul" for name in self.prognostic]
        keys += [f"{name}.{key}" for name in self.trends for key in ("rul", "rul_low", "rul_high")]
        return [
            SignalInfo(f"{SOURCE}.{key}", SOURCE, self.config.interval, asset=key.rsplit(".", 1)[0])
            for key in keys
        ]

    def _record(self, scored: list[AssetDetector], now: float) -> None:
        for asset in scored:
            last, name = asset.last, asset.config.name
            if last is not None:
                self._put(f"{name}.score", last.ts, last.score)
                self._put(f"{name}.alarm", last.ts, float(last.alarm))
                if name in self.trends:
                    self.trends[name].observe(last.ts, last.score, last.threshold)
        known = self._health
        for name, value in self.health().items():
            if value != known.get(name):
                known[name] = value
                self._put(f"{name}.health", now, value)

    def _put(self, key: str, ts: float, value: float) -> None:
        # Only the latest per signal is kept: unread samples must not pile up.
        self._fresh[key] = Sample(f"{SOURCE}.{key}", ts, value, Quality.GOOD)


def load_asset(
    asset: AssetConfig,
    path: Path,
    loaded: Loaded | None = None,
    prognostic_loaded: LoadedPrognostic | None = None,
) -> AssetDetector | PrognosticAsset:
    """Load an asset's model: an anomaly asset, or a prognostic one (by the card's kind).

    ``loaded``: the anomaly models loaded so far at this start, shared by the assets
    that name the same file (:meth:`ModelSlot.load`); ``prognostic_loaded`` the same
    for prognostic models (a fleet of identical machines names one RUL model: one
    session, not one per asset).

    Raises:
        ModelError: the model does not load, does not fit the asset, or is not of the
            kind the asset's ``prognosis.type`` asks for.
    """
    from edge_agent.detect.prognosis import PrognosticAsset
    from edge_agent.detect.prognostic import load_prognostic, model_kind

    wanted = asset.prognosis.type if asset.prognosis else "auto"
    kind = model_kind(path)
    if wanted != "auto" and (kind == "prognostic") != (wanted == "model"):
        need = "a prognostic" if wanted == "model" else "an anomaly"
        raise ModelError(
            f"asset {asset.name}: prognosis type {wanted!r} needs {need} model, "
            f"{path.name} is {kind}"
        )
    if kind == "prognostic":
        memo = (str(path), asset.threads, asset.engine, file_key(watched(path)))
        shared = prognostic_loaded.get(memo) if prognostic_loaded is not None else None
        model = shared or load_prognostic(path, asset.threads, asset.engine)
        if prognostic_loaded is not None:
            prognostic_loaded[memo] = model
        return PrognosticAsset(asset, model)
    who = f"asset {asset.name}"
    slot = ModelSlot.load(path, asset.threads, asset.signals, who, asset.engine, loaded)
    return AssetDetector(asset, slot)


def _cleared(raised: Alert, now: float, reason: str) -> Alert:
    return dataclasses.replace(
        raised, state=AlertState.CLEARED, window_start=now, window_end=now, reason=reason
    )


def _trends(assets: Iterable[AssetDetector]) -> dict[str, HealthTrend]:
    """The health trend of each anomaly asset that has a ``prognosis``."""
    trended = {a.config.name: a.config.prognosis for a in assets if a.config.prognosis is not None}
    if not trended:
        return {}
    from edge_agent.detect.prognosis import HealthTrend

    return {name: HealthTrend(name, prognosis) for name, prognosis in trended.items()}
