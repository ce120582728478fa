"""Run-state: is the machine running? A signal, or a condition such as ``motor_current > 2``.

``run_state: pump1.running`` means running while the signal is non-zero;
``run_state: pump1.motor_current > 2`` compares with a number (``>``, ``>=``,
``<``, ``<=``, ``==``, ``!=``). A run-state that cannot be known (no sample
within ``max_age``, or a BAD one) counts as *running*: a lost run signal must
never silence alarms.

A model window is scored only when the machine ran over all of it (a window
that spans a start or a stop is neither normal running nor a fault); a rule is
evaluated while the machine runs now. Calibration keeps only running rows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config validates run-states without loading numpy
    import numpy as np

    from edge_agent.detect.align import SeriesSource

_OPS: dict[str, Callable[[Any, float], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_PATTERN = re.compile(r"^\s*([A-Za-z0-9_\-.]+)\s*(?:(>=|<=|==|!=|>|<)\s*(\S+))?\s*$")


def check(text: str) -> str:
    """Validate a run-state expression; returns it unchanged.

    Raises:
        ValueError: not ``SIGNAL`` or ``SIGNAL OP NUMBER``.
    """
    RunState.parse(text)
    return text


@dataclass(frozen=True, slots=True)
class RunState:
    """A parsed run-state expression."""

    signal: str
    op: str = "!="
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> RunState:
        """``SIGNAL`` (non-zero means running) or ``SIGNAL OP NUMBER``.

        Raises:
            ValueError: anything else.
        """
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(
                f"run_state {text!r}: expected a signal, or `signal OP number` "
                f"with OP one of {' '.join(_OPS)}"
            )
        signal, op, number = match.groups()
        if op is None:
            return cls(signal)
        try:
            return cls(signal, op, float(number))
        except ValueError:
            raise ValueError(f"run_state {text!r}: {number!r} is not a number") from None

    def running(self, values: np.ndarray) -> np.ndarray:
        """Per value: running (unknown, NaN, counts as running)."""
        import numpy as np

        known = ~np.isnan(values)
        out = np.ones(values.shape, dtype=bool)
        out[known] = _OPS[self.op](values[known], self.value)
        return out

    def over(self, windows: SeriesSource, grid: np.ndarray, max_age: float) -> bool:
        """True when the machine ran at every grid time."""
        import numpy as np

        from edge_agent.detect.align import hold

        ts, values = windows.series(self.signal, float(grid[0]) - max_age)
        held = hold(np.asarray(ts, np.float64), np.asarray(values, np.float64), grid, max_age)
        return bool(self.running(held).all())

    def mask(
        self, ts: np.ndarray, values: np.ndarray, grid: np.ndarray, max_age: float
    ) -> np.ndarray:
        """Running or not at each grid time, from a recorded series (for calibration)."""
        import numpy as np

        from edge_agent.detect.align import hold

        held = hold(np.asarray(ts, np.float64), np.asarray(values, np.float64), grid, max_age)
        return self.running(held)

    def describe(self) -> str:
        """The expression, for reasons and logs."""
        return (
            self.signal
            if (self.op, self.value) == ("!=", 0.0)
            else (f"{self.signal} {self.op} {self.value:g}")
        )
