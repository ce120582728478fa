"""Training a remaining-useful-life model on run-to-failure engines (numpy only).

The recipe (chosen by engine-wise cross-validation, see ``validate.py``):

1. per-signal z-score normalisation learned on the training engines' rows;
2. each window of ``W`` cycles is summarised per signal by its least-squares
   level and slope (a fixed ``[W, 2]`` basis: the level says how worn, the slope
   how fast it wears, and the slope cancels each engine's own offset);
3. the target is the RUL at the window's last cycle, capped at ``cap`` (a
   healthy engine's RUL cannot be seen in its signals);
4. level and slope are standardised (their scales differ ~100x);
5. an ensemble of one-hidden-layer ReLU networks (:mod:`rul_net`) trained with
   Adam on the squared error, averaged and clipped to ``[0, cap]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_agent.train.rul_data import SIGNALS, Engine, rul_targets
from edge_agent.train.rul_net import Adam, Params, backward, forward, init_params

# Sensors that vary with wear in FD001; the settings (one operating condition),
# s1, s5, s10, s16, s18, s19 (constant) and s6 (two values) carry no wear.
FD001_SENSORS: tuple[str, ...] = (
    "s2",
    "s3",
    "s4",
    "s7",
    "s8",
    "s9",
    "s11",
    "s12",
    "s13",
    "s14",
    "s15",
    "s17",
    "s20",
    "s21",
)


@dataclass(frozen=True, slots=True)
class Recipe:
    """Training choices."""

    signals: tuple[str, ...] = FD001_SENSORS
    window: int = 30
    basis: str = "linear"
    cap: float = 125.0
    hidden: int = 64
    epochs: int = 120
    batch: int = 256
    lr: float = 2e-3
    decay: float = 1e-4
    members: int = 5
    seed: int = 0


BASES = ("linear", "quadratic", "two_scale")


def _line(window: int, span: int) -> np.ndarray:
    """``[W, 2]``: mean and least-squares slope per cycle of the last ``span`` cycles."""
    out = np.zeros((window, 2))
    t = np.arange(span, dtype=np.float64) - (span - 1) / 2
    out[window - span :, 0] = 1.0 / span
    out[window - span :, 1] = t / (t @ t) if span > 1 else 0.0
    return out


def basis(window: int, kind: str = "linear") -> np.ndarray:
    """``[W, K]`` linear summaries of a window, applied to each signal.

    ``linear``: mean and slope. ``quadratic``: plus the curvature (a centred
    second-order Legendre term). ``two_scale``: mean and slope of the whole
    window and of its last third (recent wear rate).
    """
    line = _line(window, window)
    if kind == "linear":
        return line
    if kind == "quadratic":
        t = np.linspace(-1.0, 1.0, window)
        p2 = 1.5 * t * t - 0.5
        p2 -= p2.mean()
        return np.column_stack([line, p2 / (p2 @ p2)])
    if kind == "two_scale":
        return np.column_stack([line, _line(window, max(window // 3, 2))])
    raise ValueError(f"unknown basis {kind!r} (known: {', '.join(BASES)})")


def features(z: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised windows ``[n_win, W, n]`` -> ``[n_win, n * K]`` (signal-major)."""
    return np.asarray(np.einsum("bwn,wk->bnk", z, b)).reshape(len(z), -1)


@dataclass(frozen=True, slots=True)
class Normaliser:
    """Per-signal ``(x - mean) / std`` learned from the training rows."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalise raw values ``[..., n]``."""
        return np.asarray((x - self.mean) / self.std)


@dataclass(slots=True)
class RulModel:
    """A trained ensemble: normalisation and member weights."""

    recipe: Recipe
    norm: Normaliser
    feat: Normaliser
    members: list[Params] = field(default_factory=list)

    def features(self, raw_windows: np.ndarray) -> np.ndarray:
        """Standardised window summaries ``[b, K*n]`` of raw windows ``[b, W, n]``."""
        b = basis(self.recipe.window, self.recipe.basis)
        return self.feat.apply(features(self.norm.apply(raw_windows), b))

    def predict(self, raw_windows: np.ndarray) -> np.ndarray:
        """RUL ``[b]`` of raw windows ``[b, W, n]`` (the recipe's signals, in order)."""
        x = self.features(raw_windows)
        mean = np.mean([forward(p, x)[0] for p in self.members], axis=0)
        return np.asarray(np.clip(mean, 0.0, self.recipe.cap))


def select(engine: Engine, signals: Sequence[str]) -> np.ndarray:
    """The engine's values of ``signals`` ``[cycles, len(signals)]``."""
    index = [SIGNALS.index(s) for s in signals]
    return engine.values[:, index]


def fit_normaliser(engines: Sequence[Engine], signals: Sequence[str]) -> Normaliser:
    """Mean and std of every training row; a floor keeps a flat signal from dividing by 0."""
    rows = np.vstack([select(e, signals) for e in engines])
    mean = rows.mean(axis=0)
    return Normaliser(mean, np.maximum(rows.std(axis=0), np.maximum(np.abs(mean) * 1e-6, 1e-9)))


def windows(
    engines: Sequence[Engine], signals: Sequence[str], window: int, cap: float
) -> tuple[np.ndarray, np.ndarray]:
    """All full windows of all engines ``[N, W, n]`` and the capped RUL at their last cycle."""
    xs, ys = [], []
    for engine in engines:
        values = select(engine, signals)
        if len(values) < window:
            continue
        view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
        xs.append(view.transpose(0, 2, 1))
        ys.append(rul_targets(len(values), cap)[window - 1 :])
    return np.concatenate(xs), np.concatenate(ys)


def _cosine(epoch: int, epochs: int) -> float:
    """Learning-rate factor: cosine decay to 5 % over the run."""
    return float(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def fit_member(x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int) -> Params:
    """Train one network on features ``x`` ``[N, d]`` and targets ``y`` (cycles)."""
    rng = np.random.default_rng(seed)
    params = init_params(x.shape[1], recipe.hidden, rng)
    opt = Adam(params, recipe.lr, recipe.decay)
    target = y / recipe.cap  # unit-scale targets keep Adam's step sizes sensible
    for epoch in range(recipe.epochs):
        order = rng.permutation(len(x))
        scale = _cosine(epoch, recipe.epochs)
        for start in range(0, len(x), recipe.batch):
            idx = order[start : start + recipe.batch]
            pred, h = forward(params, x[idx])
            dy = 2.0 * (pred - target[idx]) / len(idx)
            opt.step(params, backward(params, x[idx], h, dy), scale)
    params["w2"] *= recipe.cap  # the network outputs cycles from here on
    params["b2"] *= recipe.cap
    return params


def fit(engines: Sequence[Engine], recipe: Recipe) -> RulModel:
    """Train the recipe's ensemble on run-to-failure ``engines`` (deterministic per seed)."""
    norm = fit_normaliser(engines, recipe.signals)
    raw, y = windows(engines, recipe.signals, recipe.window, recipe.cap)
    f = features(norm.apply(raw), basis(recipe.window, recipe.basis))
    # Level and slope differ in scale by ~100x: standardising them keeps both
    # visible to Adam and to the int8 activation range of the hidden layer.
    feat = Normaliser(f.mean(axis=0), np.maximum(f.std(axis=0), 1e-9))
    x = feat.apply(f)
    model = RulModel(recipe, norm, feat)
    for m in range(recipe.members):
        model.members.append(fit_member(x, y, recipe, recipe.seed * 1000 + m))
    return model
