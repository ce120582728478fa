"""``edge-agent demo`` as a person runs it: alerts raised and cleared, a summary, exit 0.

It takes as long as the demo (about 80 s): the demo's scenario is played at real speed,
the way it is shown, because the model's windows are in wall-clock seconds.
"""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_raises_and_clears_a_model_alert_and_a_rule_alert() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "demo", "--duration", "80"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    for state in ("RAISED", "CLEARED"):
        assert re.search(rf"{state} .*\[model: ", out), out
        assert re.search(rf"{state} .*\[rule: ", out), out
    assert re.search(r"alerts raised [1-9]\d*, cleared [1-9]", out), out
    assert re.search(r"outbox: 0 pending, [1-9]\d* alert events delivered", out), out
    assert "Traceback" not in result.stderr
