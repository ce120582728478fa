"""Calibration on site: normalisation and threshold learnt from one machine's normal history.

The history (from the twin, or the first rows of a replayed CSV) is aligned onto
the model's step exactly as live windows are (:func:`edge_agent.detect.align.hold`,
same ``fill_limit``). Rows with a gap or a BAD value split the history into
segments; a window never spans two segments. Mean and std come from every
complete row; the threshold is the card's rule (``calibration.quantile`` of the
window scores, times ``calibration.factor``).

Versions: the card in use lives beside the model as ``<stem>.card.json`` (it
wins over the card inside the model). Each calibration also writes
``<stem>.card.v<N>.json`` and never deletes one; before the first calibration
the shipped card is saved the same way. ``rollback`` puts the previous version
back. A running agent picks the new card up within a second (hot swap).

Calibration that cannot hurt (``edge-agent calibrate``): only running rows are
used (the asset's ``run_state``), never rows the agent recorded in alarm; fewer
usable windows than ``calibrate.min_windows`` is a refusal; a threshold that
would move by more than ``calibrate.max_change`` (either way) needs ``--force``;
``--dry-run`` shows both cards and what each would have raised over the same
history (:func:`would_raise`), and writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.detect.align import hold
from edge_agent.detect.card import ModelCard, sidecar_paths
from edge_agent.detect.lifecycle import Chatter, Evidence, Gate, Level, Tracker
from edge_agent.detect.runstate import RunState
from edge_agent.errors import ModelError
from edge_agent.types import AlertKind, AlertState

if TYPE_CHECKING:
    from edge_agent.detect.model import AnomalyModel

Series = tuple[np.ndarray, np.ndarray]


def history_segments(
    series: Sequence[Series],
    step: float,
    fill_limit: float,
    until: float | None = None,
    exclude: Series | None = None,
    running: tuple[RunState, Series] | None = None,
) -> list[np.ndarray]:
    """Align raw series onto the step grid; the runs of complete rows ``[time, n]``.

    Args:
        series: per signal, in the model's column order: ``(ts, values NaN where BAD)``.
        step: the model's step in seconds.
        fill_limit: how old a held value may be (as live).
        until: last grid time to use; default the last sample.
        exclude: a recorded 0/1 alarm series (``detect.<asset>.alarm``): rows
            while it held 1 are not normal history and are left out.
        running: the asset's run-state and its recorded signal: rows while the
            machine was stopped are left out.
    """
    stamps = [np.asarray(ts, np.float64) for ts, _ in series if len(ts)]
    if len(stamps) < len(series):
        return []
    first = max(float(ts.min()) for ts in stamps)
    last = until if until is not None else max(float(ts.max()) for ts in stamps)
    start = np.ceil(first / step - 1e-9) * step
    count = int(np.floor((last - start) / step + 1e-6)) + 1
    if count <= 0:
        return []
    grid = start + step * np.arange(count, dtype=np.float64)
    cols = [
        hold(np.asarray(t, np.float64), np.asarray(v, np.float64), grid, fill_limit)
        for t, v in series
    ]
    matrix = np.stack(cols, axis=1)
    complete = np.isfinite(matrix).all(axis=1)
    if exclude is not None and len(exclude[0]):
        alarm = hold(np.asarray(exclude[0]), np.asarray(exclude[1]), grid, np.inf)
        complete &= ~(alarm > 0)
    if running is not None:
        run, (run_ts, run_values) = running
        complete &= run.mask(np.asarray(run_ts), np.asarray(run_values), grid, 60.0)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], complete.astype(np.int8), [0]))))
    return [matrix[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def fit_card(model: AnomalyModel, segments: Sequence[np.ndarray]) -> ModelCard:
    """A new card for ``model`` fitted to normal ``segments``.

    Raises:
        ModelError: fewer than two windows' worth of complete rows.
    """
    from edge_agent.detect.model import sliding_windows

    card = model.card
    usable = [s for s in segments if len(s) >= card.window]
    n_windows = sum(len(s) - card.window + 1 for s in usable)
    if n_windows < card.window:
        rows = sum(len(s) for s in segments)
        raise ModelError(
            f"calibration needs at least {2 * card.window - 1} consecutive complete rows; "
            f"the history has {rows} complete row(s) in {len(segments)} run(s)"
        )
    data = np.concatenate(usable).astype(np.float64)
    mean = data.mean(axis=0)
    # A signal flat on this machine must not divide by ~0 (same floor as the model's own).
    std = np.maximum(data.std(axis=0), np.maximum(np.abs(mean) * 1e-3, 1e-6))
    staged = model.with_card(card.replace(mean=tuple(mean.tolist()), std=tuple(std.tolist())))
    scores = np.concatenate(
        [staged.score(sliding_windows(staged.normalise(s), card.window)) for s in usable]
    )
    rule = {"quantile": 0.99, "factor": 1.5, **card.calibration}
    threshold = float(np.quantile(scores, rule["quantile"]) * rule["factor"])
    info = {
        **card.info,
        "calibrated_rows": len(data),
        "calibrated_windows": len(scores),
    }
    return staged.card.replace(threshold=max(threshold, 1e-12), info=info)


def usable_windows(segments: Sequence[np.ndarray], window: int) -> int:
    """Windows the segments hold (a window never spans two segments)."""
    return sum(len(s) - window + 1 for s in segments if len(s) >= window)


def would_raise(
    model: AnomalyModel,
    segments: Sequence[np.ndarray],
    raise_gate: Gate,
    clear_gate: Gate,
    clear_below: float,
    chatter: Chatter | None = None,
) -> tuple[int, int]:
    """(windows at or above the threshold, alerts raised) over ``segments`` with ``model``'s card.

    The alerts are counted with the live lifecycle (debounce and hysteresis), each
    segment on its own, one window per step.
    """
    from edge_agent.detect.model import sliding_windows

    card, above, raised = model.card, 0, 0
    for segment in segments:
        if len(segment) < card.window:
            continue
        scores = model.score(sliding_windows(model.normalise(segment), card.window))
        above += int((scores >= card.threshold).sum())
        tracker = Tracker("", "model", AlertKind.MODEL, raise_gate, clear_gate)
        tracker.chatter = chatter or tracker.chatter
        for i, score in enumerate(scores.tolist()):
            level = Level.ABOVE if score >= card.threshold else Level.BAND
            if score < card.threshold * clear_below:
                level = Level.BELOW
            event = tracker.update(
                i * card.step, level, Evidence(score, card.threshold, (), "", 0.0)
            )
            raised += event is not None and event.state is AlertState.RAISED
    return above, raised


def version_path(model_path: Path, version: int) -> Path:
    """``<stem>.card.v<N>.json`` beside the model."""
    return model_path.with_name(f"{model_path.stem}.card.v{version}.json")


def versions(model_path: Path) -> dict[int, Path]:
    """Every saved card version beside the model."""
    pattern = re.compile(re.escape(model_path.stem) + r"\.card\.v(\d+)\.json$")
    found = {}
    for path in model_path.parent.glob(f"{model_path.stem}.card.v*.json"):
        match = pattern.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def save(model_path: Path, running: ModelCard, card: ModelCard) -> tuple[ModelCard, Path]:
    """Write ``card`` as the next version and make it current; returns it and its path.

    ``running`` is the card in use now; it is kept as a version first if it was
    never saved (the shipped card), so the first calibration can be rolled back.
    """
    saved = versions(model_path)
    if running.version not in saved:
        _write(version_path(model_path, running.version), running)
        saved[running.version] = version_path(model_path, running.version)
    card = card.replace(version=max(saved) + 1)
    path = version_path(model_path, card.version)
    _write(path, card)
    _write(sidecar_paths(model_path)[0], card)
    return card, path


def rollback(model_path: Path, running: ModelCard) -> ModelCard:
    """Make the newest version older than ``running`` current again.

    Raises:
        ModelError: there is no older version.
    """
    older = [v for v in versions(model_path) if v < running.version]
    if not older:
        raise ModelError(f"{model_path.name}: no card version older than v{running.version}")
    path = versions(model_path)[older[-1]]
    card = ModelCard.from_json(path.read_text(), origin=str(path))
    _write(sidecar_paths(model_path)[0], card)
    return card


def _write(path: Path, card: ModelCard) -> None:
    # Write then rename: a running agent never reads half a card.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(card.to_json())
    tmp.replace(path)
