"""Damaged storage never loops the service.

SD cards corrupt. An agent that exits on a damaged file is restarted by systemd
every 5 s, forever, and does nothing useful meanwhile. So at start:

* the data folder must be writable at all (a read-only or unwritable folder is
  something only an operator can fix: :class:`StorageError`, exit 73, which the
  unit does not restart);
* the twin and the outbox are checked (``PRAGMA quick_check`` reads every page, once
  per start: a 72 MB twin took 1.05 s with a cold cache and 0.24 s warm on the
  2-core x86 test machine; an SD card reads slower, not measured) and opened;
* a file that is corrupt, truncated, not a database, or unreadable is moved aside
  as ``<name>.corrupt-<UTC time>`` (with its ``-wal`` and ``-shm``), a fresh one is
  created, and what was lost is logged at ERROR (counted from the damaged file as
  far as it can still be read);
* the loss of an outbox is also announced upstream: every sink gets a ``notice``
  with ``lost`` naming the file and the rows that were waiting in it.

Damage found while running (a write that fails with EIO or on a read-only
filesystem) is not handled here: the recorder and the detector hold what they
could not write, retry at each flush and log once each way.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.errors import StorageError

__all__ = ["EX_CANTCREAT", "StorageError"]

if TYPE_CHECKING:  # imported where used: the CLI imports this module for StorageError
    from edge_agent.forward.config import OutboxConfig
    from edge_agent.forward.outbox import Outbox
    from edge_agent.twin.config import TwinConfig
    from edge_agent.twin.store import SignalStore

log = logging.getLogger(__name__)

EX_CANTCREAT = 73
"""Exit code when the data folder cannot be written (sysexits' EX_CANTCREAT)."""
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another process, not damage


def require_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written in it.

    Raises:
        StorageError: read-only filesystem, no permission, or an I/O error.
    """
    probe = folder / f".write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"x")
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as exc:
        why = {errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied"}
        reason = why.get(exc.errno or 0, exc.strerror or str(exc))
        raise StorageError(
            f"data_dir {folder} cannot be written ({reason}): the twin and the outbox need it."
            " Fix the folder or its filesystem, then start the agent again."
        ) from exc


def damage(path: Path) -> str | None:
    """Why the SQLite file at ``path`` cannot be used, or None (also when it is missing)."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return _why(exc)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.Error as exc:
        return _why(exc)
    finally:
        conn.close()
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    return "; ".join(problems)[:300] if problems else None


def _why(exc: sqlite3.Error) -> str | None:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return None if code in _BUSY else str(exc) or type(exc).__name__


def set_aside(path: Path, now: float | None = None) -> Path:
    """Rename ``path`` (and its -wal, -shm) to ``<name>.corrupt-<UTC time>``; return the new path.

    Raises:
        StorageError: the rename failed (an unreadable card usually fails this too).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        for suffix in ("-wal", "-shm", ""):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
    except OSError as exc:
        raise StorageError(f"{path} is damaged and cannot be moved aside: {exc}") from exc
    return target


def _count(path: Path, sql: str) -> list[tuple[Any, ...]] | None:
    """Rows of a query on a damaged file, or None where it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "size unknown"


# -- the twin ------------------------------------------------------------------


def open_twin(path: Path, config: TwinConfig) -> SignalStore:
    """Open the twin; a damaged file is set aside and a fresh twin started (logged at ERROR).

    Raises:
        StorageError: the folder cannot be written, or a damaged file cannot be moved.
        StoreError: another process writes to the twin.
    """
    from edge_agent.errors import StoreError
    from edge_agent.twin.store import SignalStore

    require_writable(path.parent)
    problem = _twin_damage(path)
    if problem is not None:
        _replace_twin(path, problem)
    try:
        return SignalStore.open(path, config)
    except StoreError as exc:
        if isinstance(exc.__cause__, BlockingIOError) or problem is not None:
            raise
        _replace_twin(path, str(exc))  # opened cleanly but not ours, or failed mid-load
        return SignalStore.open(path, config)


def _twin_damage(path: Path) -> str | None:
    """Check under the writer lock, so a second agent's file is never touched."""
    from edge_agent.errors import StoreError
    from edge_agent.twin import sql_layout as layout

    try:
        lock = layout.lock_writer(path)
    except BlockingIOError as exc:
        raise StoreError(f"twin {path}: another process is writing to it") from exc
    except OSError as exc:
        raise StorageError(f"twin {path}: cannot create its lock file: {exc}") from exc
    try:
        return damage(path)
    finally:
        lock.close()


def _replace_twin(path: Path, problem: str) -> None:
    signals = _count(path, "SELECT count(*) FROM signals")
    samples = _count(path, "SELECT count(*) FROM samples")
    size = _size(path)
    aside = set_aside(path)
    held = "; ".join(
        f"{rows[0][0]:,} {what}"
        for rows, what in ((signals, "signals"), (samples, "raw samples"))
        if rows
    )
    log.error(
        "twin %s is damaged (%s): moved to %s and a fresh twin started. Lost: the history "
        "and rollups in it (%s%s), so detector windows start empty and charts have a gap",
        path, problem, aside.name, size, f"; still readable: {held}" if held else "",
    )  # fmt: skip


# -- the outbox ----------------------------------------------------------------


def open_outbox(path: Path, config: OutboxConfig, sinks: Sequence[str], gateway: str) -> Outbox:
    """Open the outbox; a damaged one is set aside, a fresh one started, the loss announced.

    Raises:
        StorageError: the folder cannot be written, or a damaged file cannot be moved.
    """
    from edge_agent.forward.encode import encode_loss
    from edge_agent.forward.outbox import Outbox

    require_writable(path.parent)
    problem = damage(path)
    lost = _replace_outbox(path, problem) if problem is not None else None
    try:
        outbox = Outbox.open(path, config, sinks)
    except sqlite3.Error as exc:  # a database, but not an outbox (or a schema from elsewhere)
        if lost is not None:
            raise StorageError(f"outbox {path}: a fresh file fails too: {exc}") from exc
        lost = _replace_outbox(path, str(exc))
        outbox = Outbox.open(path, config, sinks)
    if lost is not None:
        outbox.put_notice(encode_loss(gateway, time.time(), lost))
    return outbox


def _replace_outbox(path: Path, problem: str) -> dict[str, Any]:
    rows = _count(path, "SELECT cls, count(*) FROM rows GROUP BY cls")
    counts = dict(rows) if rows is not None else {}
    alerts, telemetry = counts.get(0), counts.get(1)
    size = _size(path)
    aside = set_aside(path)
    unknown = "an unknown number of"
    log.error(
        "outbox %s is damaged (%s): moved to %s and a fresh outbox started. Lost: %s alert "
        "and %s telemetry rows waiting for delivery (%s); the sinks are told with a notice",
        path, problem, aside.name,
        unknown if alerts is None and rows is None else f"{alerts or 0:,}",
        unknown if telemetry is None and rows is None else f"{telemetry or 0:,}", size,
    )  # fmt: skip
    known = rows is not None
    return {
        "file": aside.name,
        "reason": problem,
        "alert": (alerts or 0) if known else None,
        "telemetry": (telemetry or 0) if known else None,
    }
