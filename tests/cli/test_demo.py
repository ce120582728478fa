"""``edge-agent demo`` as a person runs it: alerts raised and cleared, a summary, exit 0.

The scenario is played at twice its speed (``--speed 2``, the demo's own option; the
wheel's check in deploy/check-wheel.sh plays it so too): its 70 s in 35 s. The model's
alert clears about 10 s (wall clock: the model's windows are in seconds) after the last
fault ends. Once the scenario's faults are over, every alert raised is cleared and the
outbox holds nothing undelivered, the test ends the demo with Ctrl-C, as a person would
(``--duration 50`` stays the bound: the demo stops by itself then). At real speed the
same alerts come and go, half as fast. While it runs, the page whose URL it prints
answers, and shows each alert the moment it is raised.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from edge_agent.forward.outbox_status import open_readonly, read_status
from edge_agent.sim.scenario import DEMO

URL = re.compile(r"^http://127\.0\.0\.1:\d+/$")
FOLDER = re.compile(r"config\s+(\S+)/demo-config\.yaml")
EVENT = re.compile(r"(RAISED|CLEARED) .*\[(\w+): ([^\]]+)\]")
CLOCK = re.compile(r"^t=\s*(\d+)s")
FAULTS_END = max(f.end for f in DEMO.faults)
"""Plant time after which the scenario injects nothing more."""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _pending(folder: Path) -> int:
    db = open_readonly(folder / "outbox.db")
    try:
        return sum(b.rows for b in read_status(db).backlog)
    finally:
        db.close()


def _over(line: str, events: dict[str, Counter[tuple[str, str]]], folder: Path | None) -> bool:
    """Faults over, every alert raised cleared (rule and model), nothing left to deliver."""
    clock = CLOCK.match(line)
    if folder is None or clock is None or int(clock.group(1)) <= FAULTS_END:
        return False
    raised, cleared = events["RAISED"], events["CLEARED"]
    kinds = {kind for kind, _ in cleared}
    return raised == cleared and {"model", "rule"} <= kinds and _pending(folder) == 0


def test_demo_raises_and_clears_a_model_alert_and_a_rule_alert() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "demo", "--duration", "50", "--speed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    page, folder, stopped = "", None, False
    raised: list[str] = []
    on_page: set[str] = set()
    events: dict[str, Counter[tuple[str, str]]] = {"RAISED": Counter(), "CLEARED": Counter()}
    for line in proc.stdout:
        lines.append(line)
        if URL.match(line.strip()):
            page = line.strip()
        elif found := FOLDER.search(line):
            folder = Path(found.group(1))
        elif found := EVENT.search(line):
            events[found.group(1)][found.group(2), found.group(3)] += 1
            if found.group(1) == "RAISED" and page:
                # The page's API has the alert open by the time the screen prints it.
                raised.append(found.group(3))
                on_page |= {a["cause"] for a in _get(page + "api/v1/alerts")["alerts"]}
        if not stopped and _over(line, events, folder):
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops as on SIGTERM
            stopped = True
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
