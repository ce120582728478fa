"""Re-baselining: "this is the new normal" after a repair, a recalibration, a process change.

A model's card normalises each signal as ``(x - mean) / std``. After a real
event a machine often settles in a new steady state a few units off the old
one; the model keeps calling it abnormal and its false alarms teach operators
to ignore it. Re-baselining moves ``mean`` by the level shift of the new state
and keeps ``std``, the threshold and the model: the shape of normal running is
unchanged, only its level moved.

- The operator variant (``edge-agent rebaseline``, :func:`rebaselined_card`):
  the mean of recent running history becomes the card's mean; written as a new
  card version (rollback as for ``calibrate``); a running agent swaps it in.
- The automatic variant (:class:`AutoBaseline`, ``rebaseline: {auto: on}``):
  when the model alert has been open for ``after`` and the signals have been
  steady over that time (the means of its two halves differ by at most
  ``steady`` standard deviations of the card for every signal), the card's mean
  moves by the difference between the mean of that time and the mean of as
  long a span of normal running before the alert. It is made in memory (lost at
  a restart, logged and told in the clear's reason) and it costs missed
  anomalies: a fault that is itself a steady state is re-baselined away after
  ``after`` (measured on SKAB in BENCHMARKS.md).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edge_agent.detect.card import ModelCard


def rebaselined_card(card: ModelCard, rows: np.ndarray, info: dict[str, object]) -> ModelCard:
    """``card`` with the mean of ``rows`` (``[time, signal]``, running history) as its mean."""
    mean = np.asarray(rows, np.float64).mean(axis=0)
    return card.replace(mean=tuple(float(v) for v in mean), info={**card.info, **info})


def shifted_card(card: ModelCard, shift: np.ndarray) -> ModelCard:
    """``card`` with its mean moved by ``shift``."""
    mean = np.asarray(card.mean, np.float64) + shift
    return card.replace(mean=tuple(float(v) for v in mean))


class AutoBaseline:
    """Watches one asset's rows; says when a sustained, steady alarm state is the new normal."""

    def __init__(self, rows: int, steady: float) -> None:
        self.steady = steady
        self._normal: deque[np.ndarray] = deque(maxlen=rows)
        self._alarm: deque[np.ndarray] = deque(maxlen=rows)

    def observe(
        self, window: np.ndarray, is_open: bool, normal: bool, std: np.ndarray
    ) -> np.ndarray | None:
        """Feed a scored window (``[time, signal]``); the mean shift when the time has come.

        ``normal``: the window scored under the clear level. Its oldest row is then
        old normal (the newest may already belong to a fault's onset); while the
        alert is open the newest row is the state being watched.
        """
        if not is_open:
            self._alarm.clear()
            if normal:
                self._normal.append(window[0])
            return None
        self._alarm.append(window[-1])
        full = self._alarm.maxlen
        if len(self._alarm) < (full or 0) or len(self._normal) < (full or 0):
            return None
        recent = np.asarray(self._alarm)
        half = len(recent) // 2
        drift = np.abs(recent[:half].mean(axis=0) - recent[half:].mean(axis=0)) / std
        if float(drift.max()) > self.steady:
            return None
        shift: np.ndarray = recent.mean(axis=0) - np.asarray(self._normal).mean(axis=0)
        self._alarm.clear()
        self._normal.clear()
        return shift
