"""The spill file: alerts the outbox refused at stop, kept for the next start.

A small JSON file beside the outbox; re-queued first at start, removed once queued.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from edge_agent.forward.outbox import Outbox
from edge_agent.types import Alert

log = logging.getLogger(__name__)


def write_spill(path: Path, alerts: Sequence[Alert]) -> None:
    """Write alerts the outbox refused to ``path`` (JSON, atomically, added to what is there)."""
    kept = read_spill(path) + list(alerts)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([a.to_dict() for a in kept]) + "\n")
    tmp.replace(path)


def read_spill(path: Path) -> list[Alert]:
    """The alerts in a spill file; none when it does not exist or is damaged.

    A damaged file (cut short by a power cut, garbage) is moved aside as
    ``<name>.corrupt-<UTC time>`` and logged at ERROR: left in place it would make every
    start fail to re-queue and every stop fail to spill, losing the alerts of that stop.
    """
    try:
        return [Alert.from_dict(d) for d in json.loads(path.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.replace(aside)
        log.error("%s is damaged (%s): moved aside as %s, its alerts lost", path, exc, aside.name)
        return []


def requeue_spill(path: Path, outbox: Outbox, gateway: str) -> int:
    """At start: put spilled alerts into the outbox (before any new one), then remove the file."""
    alerts = read_spill(path)
    if alerts:
        outbox.put_alerts(alerts, gateway)
        log.warning("re-queued %d alert(s) the outbox refused before the last stop", len(alerts))
    path.unlink(missing_ok=True)
    return len(alerts)


def adopt_legacy_open_alerts(path: Path, outbox: Outbox) -> int:
    """Once, after an upgrade: take the open alerts a 0.1 agent saved at its last clean stop.

    They are trusted only when the outbox has no alert history yet (the file was
    written on clean stops only, so after a crash it could name alerts long cleared).
    The file is removed either way: the outbox's alert state replaces it.
    """
    try:
        alerts = [Alert.from_dict(d) for d in json.loads(path.read_text())]
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        alerts = []
    adopted = outbox.adopt_open_alerts(alerts)
    path.unlink(missing_ok=True)
    return adopted
