"""``edge-agent demo`` as a person runs it: alerts raised and cleared, a summary, exit 0.

The scenario is played at twice its speed (``--speed 2``, the demo's own option; the
wheel's check in deploy/check-wheel.sh plays it so too): its 70 s in 35 s, then 15 s
more, so that the model's alert, which clears about 10 s (wall clock: the model's
windows are in seconds) after the last fault ends, is cleared before the demo stops.
At real speed the same alerts come and go, half as fast: 80 s of test for the same
checks. While it runs, the page whose URL it prints answers, and shows each alert the
moment it is raised.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

URL = re.compile(r"^http://127\.0\.0\.1:\d+/$")
RAISED = re.compile(r"RAISED .*\[\w+: ([^\]]+)\]")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_demo_raises_and_clears_a_model_alert_and_a_rule_alert() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "demo", "--duration", "50", "--speed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    page = ""
    raised: list[str] = []
    on_page: set[str] = set()
    for line in proc.stdout:
        lines.append(line)
        if URL.match(line.strip()):
            page = line.strip()
        elif (found := RAISED.search(line)) and page:
            # The page's API has the alert open by the time the screen prints it.
            raised.append(found.group(1))
            on_page |= {a["cause"] for a in _get(page + "api/v1/alerts")["alerts"]}
    _, err = proc.communicate(timeout=180)
    out = "".join(lines)
    assert proc.returncode == 0, err
    assert page, out
    assert raised and set(raised) <= on_page, (raised, on_page, out)
    for state in ("RAISED", "CLEARED"):
        assert re.search(rf"{state} .*\[model: ", out), out
        assert re.search(rf"{state} .*\[rule: ", out), out
    assert re.search(r"alerts raised [1-9]\d*, cleared [1-9]", out), out
    assert re.search(r"outbox: 0 pending, [1-9]\d* alert events delivered", out), out
    assert "Traceback" not in err
