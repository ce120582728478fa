"""The model of one asset: loaded, matched to the asset's signals, swapped when its files change.

Hot swap: at a detection step the slot compares the ``(mtime, size)`` of the
model file and of its card beside it (``<stem>.card.json``, written by
``edge-agent calibrate``) with what it loaded, at most once every
:data:`CHECK_EVERY` seconds of the monotonic clock (three ``stat`` calls, 6-13 us,
cost more than a rule's whole step; a detector stepping every second still
checks at every step). A changed file is therefore seen at the first step at
least :data:`CHECK_EVERY` after the previous check. On a change it loads the new
files *beside* the running model and validates them (the model loader's checks,
the card's signals against the asset's, one probe window giving finite errors of
the right shape). Only then does it replace the model, in one assignment between
two steps: a step always uses one consistent model and card. A file that fails
validation is logged once (ERROR) and the previous model keeps running; it is
tried again when the file changes again. Writers should still write a new model
to a temporary name and rename it over the old one, so a half-written file is
never even seen.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.detect.card import ModelCard, sidecar_paths
from edge_agent.errors import ModelError

if TYPE_CHECKING:
    from edge_agent.detect.model import AnomalyModel
    from edge_agent.detect.prognostic import PrognosticModel

log = logging.getLogger(__name__)

FileKey = tuple[tuple[int, int] | None, ...]

CHECK_EVERY = 1.0
"""Seconds (monotonic) between two looks at the model's files."""

Loaded = dict[tuple[str, int, str, FileKey], "AnomalyModel"]
"""Models loaded at one start, by file, threads, engine and the files' (mtime, size)."""

LoadedPrognostic = dict[tuple[str, int, str, FileKey], "PrognosticModel"]
"""The same for prognostic models (no hot swap: a reload loads them afresh)."""


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_signals(wanted: Sequence[str], available: Sequence[str], who: str) -> list[str]:
    """For each ``wanted`` name, the ``available`` name that matches it, in order.

    Names match in full, or by the part after the source prefix (``pump.``),
    ignoring case, spaces and punctuation: a model trained on the column
    ``Volume Flow RateRMS`` reads the signal ``pump.volume_flow_raterms``.

    Raises:
        ModelError: naming every wanted name without a match.
    """
    exact = {s: s for s in available}
    loose: dict[str, str] = {}
    for name in available:
        loose.setdefault(_norm(name), name)
        loose.setdefault(_norm(name.split(".", 1)[-1]), name)
    found = [
        exact.get(s) or loose.get(_norm(s)) or loose.get(_norm(s.split(".", 1)[-1])) for s in wanted
    ]
    missing = [s for s, f in zip(wanted, found, strict=True) if f is None]
    if missing:
        raise ModelError(f"{who}: no signal for {missing} among {list(available)}")
    return [f for f in found if f is not None]


def watched(path: Path) -> tuple[Path, ...]:
    """The files whose change means a new model or card: the model and its card files."""
    return (path, *sidecar_paths(path))


def file_key(files: Sequence[str | Path]) -> FileKey:
    """``(mtime_ns, size)`` of each file; None for an absent one."""
    out: list[tuple[int, int] | None] = []
    for candidate in files:
        try:
            stat = os.stat(candidate)
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def load_checked(
    path: Path, threads: int, asset_signals: Sequence[str], who: str, engine: str = "auto"
) -> tuple[AnomalyModel, list[str]]:
    """Load a model and check it fits the asset: ``(model, signals in card order)``.

    ``engine`` is as for :func:`~edge_agent.detect.model.load_model`.

    Raises:
        ModelError: the loader's error, a missing signal, or a bad probe result.
    """
    from edge_agent.detect.model import load_model

    model = load_model(path, threads, engine=engine)
    signals = match_signals(model.card.signals, asset_signals, who)
    probe(model, who)
    return model, signals


def probe(model: AnomalyModel, who: str) -> None:
    """Run one window of normal values (the card mean) and check the output."""
    card = model.card
    window = np.zeros((1, card.window, len(card.signals)), dtype=np.float32)
    errors = model.errors(window)
    if errors.shape != (1, len(card.signals)) or not np.isfinite(errors).all():
        raise ModelError(f"{who}: the model gives non-finite errors on a normal window")


class ModelSlot:
    """Holds the current model of one asset and swaps it when its files change."""

    def __init__(
        self,
        path: Path,
        threads: int,
        asset_signals: Sequence[str],
        who: str,
        model: AnomalyModel,
        signals: list[str],
        key: FileKey,
        engine: str = "auto",
    ) -> None:
        self.path = path
        self.threads = threads
        self.asset_signals = list(asset_signals)
        self.who = who
        self.model = model
        self.signals = signals
        self._key = key
        # Plain strings: these are stat-ed every second, and pathlib costs more than the call.
        self._files = tuple(map(str, watched(path)))
        self._refused: FileKey | None = None
        self.engine = engine  # as configured; the model's .backend says which one runs
        self.check_every = CHECK_EVERY
        self.clock = time.monotonic
        self._checked = float("-inf")

    @classmethod
    def load(
        cls,
        path: Path,
        threads: int,
        asset_signals: Sequence[str],
        who: str,
        engine: str = "auto",
        loaded: Loaded | None = None,
    ) -> ModelSlot:
        """Load the first model; any problem is a ModelError (startup fails).

        Args:
            loaded: the models this start has loaded so far (:data:`Loaded`); assets
                that name one file share its model, loaded and probed once (50 assets
                on one model: about 1 ms each, BENCHMARKS.md). Sharing is safe: a model
                keeps nothing between calls, the detector calls it from one thread,
                and a slot replaces its model, never changes it.
        """
        key = file_key(watched(path))
        memo = (str(path), threads, engine, key)
        model = loaded.get(memo) if loaded is not None else None
        if model is None:
            model, signals = load_checked(path, threads, asset_signals, who, engine)
        else:  # the same checks as load_checked's for this asset: the probe gave the same
            signals = match_signals(model.card.signals, asset_signals, who)
        if loaded is not None:
            loaded[memo] = model
        return cls(path, threads, asset_signals, who, model, signals, key, engine)

    @property
    def card(self) -> ModelCard:
        """The card in use (normalisation, threshold, window, step)."""
        return self.model.card

    def use_card(self, card: ModelCard) -> None:
        """Run the same model with another card (a calibration made in memory)."""
        model = self.model.with_card(card)
        probe(model, self.who)
        self.model = model

    def refresh(self) -> bool:
        """Swap in a changed model if it validates; True when swapped.

        The files are looked at only if :attr:`check_every` seconds have passed on
        :attr:`clock` since the last look.
        """
        now = self.clock()
        if now - self._checked < self.check_every:
            return False
        self._checked = now
        key = file_key(self._files)
        if key == self._key or key == self._refused:
            return False
        try:
            model, signals = load_checked(
                self.path, self.threads, self.asset_signals, self.who, self.engine
            )
        except ModelError as exc:
            log.error("%s: new model refused, keeping the running one: %s", self.who, exc)
            self._refused = key
            return False
        old = self.model.card
        self.model, self.signals, self._key, self._refused = model, signals, key, None
        log.info(
            "%s: model swapped (%s v%d -> %s v%d)",
            self.who,
            old.name,
            old.version,
            model.card.name,
            model.card.version,
        )
        return True
