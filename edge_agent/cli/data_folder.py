"""The site view's queries over the data folder alone: ``edge-agent status`` and ``alerts``.

These run beside a running agent without its secrets: the config is read only
for ``agent.id``, ``agent.data_dir``, ``twin`` and ``outbox`` (no ``${VAR}`` is
substituted, so a secret that is not in this shell's environment does not
matter), and the files are opened read-only: the twin (latest values per
source), the outbox (backlog per sink) and the alert files the agent keeps
(:mod:`edge_agent.web.alerts`).

What the data folder cannot tell: a source's link state and last error live in
the running agent's memory. Here a source counts as ``receiving`` while any of
its signals is fresh (not stale), ``silent`` otherwise; the page and
``/api/v1/status`` give the link itself.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox_status import OutboxStatus, open_readonly, read_status
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.signal_status import SignalStatus
from edge_agent.twin.store import SignalStore
from edge_agent.web.alerts import StoredAlerts, alert_record, listing


@dataclass(frozen=True)
class DataFolder:
    """Where an agent keeps its files, and the settings needed to read them."""

    agent_id: str
    folder: Path
    twin: TwinConfig
    twin_path: Path
    outbox_path: Path
    sinks: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, path: Path) -> DataFolder:
        """Read only the keys that locate the files (see the module docstring).

        Raises:
            ConfigError: unreadable file, or a data_dir/twin/outbox path using ``${VAR}``.
        """
        from edge_agent.config_yaml import load_yaml, read_config_bytes

        data, _ = load_yaml(read_config_bytes(path), path)  # the same bounded reader as run
        if not isinstance(data, dict):
            data = {}
        agent = data.get("agent") or {}
        base = path.resolve().parent
        folder = base / str(agent.get("data_dir", "/var/lib/edge-agent"))
        twin = TwinConfig.model_validate(data.get("twin") or {})
        outbox = OutboxConfig.model_validate(data.get("outbox") or {})
        paths = (str(folder), twin.path, outbox.path)
        if any("${" in p for p in paths):
            raise ConfigError(f"{path}: the data folder's paths use ${{VAR}}: give --data-dir")
        sinks = tuple(str(s.get("name", "")) for s in data.get("sinks") or [])
        return cls(
            str(agent.get("id", "edge-agent")),
            folder,
            twin,
            folder / twin.path,
            folder / outbox.path,
            sinks,
        )

    @classmethod
    def at(cls, folder: Path) -> DataFolder:
        """A data folder with the default file names."""
        twin = TwinConfig()
        return cls(folder.name, folder, twin, folder / twin.path, folder / OutboxConfig().path)


def twin_status(data: DataFolder, now: float) -> list[SignalStatus]:
    """The twin's latest values (none when the agent has not made it yet)."""
    if not data.twin_path.is_file():
        return []
    store = SignalStore.open(data.twin_path, data.twin, readonly=True)
    try:
        return store.status(now)
    finally:
        store.close()


def outbox_status(data: DataFolder) -> OutboxStatus:
    """The outbox's backlog and counters (empty when there is no outbox yet)."""
    if not data.outbox_path.is_file():
        return OutboxStatus([])
    db = open_readonly(data.outbox_path)
    try:
        return read_status(db)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the outbox {data.outbox_path}: {exc}") from exc
    finally:
        db.close()


def sources_from_twin(rows: list[SignalStatus], now: float) -> list[dict[str, Any]]:
    """Per source: signals, fresh/stale/bad counts, the newest sample's age, its link.

    ``link`` is the latest ``link.<source>`` value the poll loop recorded: ``up``,
    ``down``, or ``unknown`` when that sample is stale (the agent is not running).
    """
    links = {r.info.signal[len("link.") :]: r for r in rows if r.info.source == "link"}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.info.source in ("detect", "link"):
            continue
        entry = out.setdefault(
            row.info.source,
            {"name": row.info.source, "signals": 0, "stale": 0, "bad": 0, "newest_ts": None},
        )
        entry["signals"] += 1
        entry["stale"] += int(row.stale)
        if row.sample is not None:
            entry["bad"] += int(str(row.sample.quality) == "bad")
            newest = entry["newest_ts"]
            entry["newest_ts"] = row.sample.ts if newest is None else max(newest, row.sample.ts)
    for entry in out.values():
        entry["state"] = "receiving" if entry["stale"] < entry["signals"] else "silent"
        entry["link"] = _link_state(links.get(entry["name"]))
        ts = entry.pop("newest_ts")
        entry["newest_age_s"] = None if ts is None else max(0.0, now - ts)
    return sorted(out.values(), key=lambda e: str(e["name"]))


def _link_state(row: SignalStatus | None) -> str:
    if row is None or row.sample is None or row.stale:
        return "unknown"
    return "up" if row.sample.value == 1.0 else "down"


def sinks_from_outbox(status: OutboxStatus, sinks: tuple[str, ...], now: float) -> list[Any]:
    """Per sink: backlog rows, oldest age, drops, rejects."""
    names = dict.fromkeys([*sinks, *(b.sink for b in status.backlog), *status.counters])
    out = []
    for name in names:
        backlog = [b for b in status.backlog if b.sink == name]
        oldest = min((b.oldest for b in backlog if b.oldest is not None), default=None)
        counts = status.counters.get(name, {})
        out.append(
            {
                "name": name,
                "backlog_rows": sum(b.rows for b in backlog),
                "oldest_age_s": None if oldest is None else max(0.0, now - oldest),
                "dropped": sum(v for k, v in counts.items() if k.startswith("dropped_")),
                "rejected": counts.get("rejected", 0),
            }
        )
    return out


async def overview(data: DataFolder) -> dict[str, Any]:
    """``edge-agent status``: sources, sinks and open alerts, from the files."""
    now = time.time()
    opened = await StoredAlerts(data.outbox_path).open()
    return {
        "agent": data.agent_id,
        "data_dir": str(data.folder),
        "now": now,
        "sources": sources_from_twin(twin_status(data, now), now),
        "sinks": sinks_from_outbox(outbox_status(data), data.sinks, now),
        "open_alerts": [alert_record(a, True) for a in opened],
    }


async def alert_list(data: DataFolder, everything: bool) -> list[dict[str, Any]]:
    """``edge-agent alerts``: the open ones, or with ``everything`` the kept history."""
    return await listing(StoredAlerts(data.outbox_path), everything)
