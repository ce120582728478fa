"""The values an alert carries: evenly picked, each once, without importing numpy.ma."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_agent.detect.asset import EVIDENCE_POINTS, window_values
from tests.detect.test_rules import SIG, T0, feed, rule


def reference(n: int) -> list[int]:
    """What np.unique gave (the definition the cheaper dedupe must keep)."""
    if n == 0:
        return []
    picks = np.unique(np.linspace(0, n - 1, min(n, EVIDENCE_POINTS)).round())
    return [int(i) for i in picks]


@pytest.mark.parametrize("n", [0, 1, 2, 59, 60, 61, 89, 119, 120, 121, 178, 179, 1000])
def test_model_evidence_picks_each_row_once(n: int) -> None:
    grid = T0 + np.arange(n, dtype=np.float64)
    values = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
    got = window_values(grid, values, [1], ("a",))
    assert got["ts"] == [T0 + i for i in reference(n)]
    assert got["values"]["a"] == [float(2 * i + 1) for i in reference(n)]


@pytest.mark.parametrize("seconds", [3, 61, 90, 121])
def test_rule_evidence_picks_each_sample_once(seconds: int) -> None:
    events = feed(
        rule(type="threshold", above=1.0, **{"for": f"{seconds}s"}), [5.0] * (seconds + 1)
    )
    (_, raised), *_ = events
    shown = raised.extra["evidence"]
    assert len(shown["ts"]) == len(set(shown["ts"])) == len(reference(len(shown["ts"])))
    assert shown["values"][SIG] == [5.0] * len(shown["ts"])


def test_raising_alerts_does_not_import_numpy_ma() -> None:
    # np.unique imports numpy.ma (about 1 MB of RSS) on its first call.
    code = (
        "import sys, numpy as np\n"
        "from edge_agent.detect.asset import window_values\n"
        "from tests.detect.test_rules import feed, rule\n"
        "window_values(np.arange(200.0), np.ones((200, 1)), [0], ('a',))\n"
        "feed(rule(type='threshold', above=1.0, **{'for': '90s'}), [5.0] * 91)\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
