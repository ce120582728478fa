"""Log lines that journald and people can use.

Three jobs, all at the process's one stderr handler:

* **Priorities journald understands.** Under systemd (``JOURNAL_STREAM`` names our
  stderr) every line starts with the syslog priority, ``<3>`` for ERROR, ``<4>`` for
  WARNING, ``<6>`` for INFO, ``<7>`` for DEBUG, and carries no timestamp (journald
  stamps each entry itself), so ``journalctl -p warning`` finds our warnings.
  Elsewhere lines keep the timestamped format.
* **Libraries translated at the boundary.** pymodbus, asyncua, httpx/httpcore and
  aiomqtt/paho log retries, frame dumps and tracebacks for faults the agent already
  reports as one transition line of its own. Their records below WARNING are
  dropped; the rest become one line without traceback, with URLs stripped of
  credentials and query strings, at most WARNING, and each distinct message at most
  once per :data:`LIBRARY_PERIOD` (repeats are counted on the next one). With
  ``--log-level debug`` they pass untouched, for troubleshooting.
* **A rate bound per source.** :class:`RateLimitedLog` lets a source log its
  transitions but at most ``burst`` lines per period; under a persistent or flapping
  fault the rest become one summary line ("vib1: 1,843 bad frames in the last 60 s").
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

LIBRARIES = ("pymodbus", "asyncua", "httpx", "httpcore", "mqtt", "aiomqtt", "paho", "serial")
"""Top-level logger names of the libraries whose records are translated (aiomqtt logs as "mqtt")."""
LIBRARY_PERIOD = 600.0
"""Seconds during which one library message is logged once (its repeats counted)."""
LIBRARY_TEXT = 200
"""Characters of a library message kept (frame dumps are cut here)."""
_DIGITS = re.compile(r"\d+")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<rest>[^\s'\"<>]+)")


def under_journald(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is connected to the journal.

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of the stream it gave us; a
    child whose stderr was redirected inherits the variable, so compare the two.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def priority(levelno: int) -> int:
    """The syslog priority (0-7) of a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    for level in (logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>`` on every line of a record (journald reads each line as an entry)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record's text with its priority before each line."""
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def redact_url(url: str) -> str:
    """``url`` without user, password, query string or fragment (safe to log)."""
    match = _URL.match(url)
    if match is None:
        return url.split("?", 1)[0].split("#", 1)[0]
    return redact_urls(url)


def redact_urls(text: str) -> str:
    """Every URL in ``text`` stripped of credentials, query string and fragment."""

    def clean(match: re.Match[str]) -> str:
        rest = match["rest"]
        host, slash, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1].split("?", 1)[0].split("#", 1)[0]
        path = path.split("?", 1)[0].split("#", 1)[0]
        return f"{match['scheme']}{host}{slash}{path}"

    return _URL.sub(clean, text)


class LibraryFilter(logging.Filter):
    """Translates third-party records: one short line, no traceback, repeats counted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False to drop the record; True after rewriting it in place."""
        if record.name.split(".", 1)[0] not in LIBRARIES:
            return True
        if record.levelno < logging.WARNING:
            return False
        # Libraries often format before logging (pymodbus, which also appends frame
        # dumps to errors): numbers and dumps must not make each line a new message.
        first = str(record.msg).strip().split("\n", 1)[0]
        key = (record.name, _DIGITS.sub("#", first)[:80])
        now = self._clock()
        since, repeats = self._seen.get(key, (-LIBRARY_PERIOD, 0))
        if now - since < LIBRARY_PERIOD:
            self._seen[key] = (since, repeats + 1)
            return False
        self._seen[key] = (now, 0)
        _condense(record, repeats)
        return True


def _condense(record: logging.LogRecord, repeats: int) -> None:
    """One line, no traceback, no credentials, never above WARNING."""
    lines = redact_urls(record.getMessage()).strip().splitlines()
    line = lines[0] if lines else ""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None:
        detail = redact_urls(str(exc)).strip().splitlines()
        line += f" ({type(exc).__name__}{': ' + detail[0][:80] if detail else ''})"
    if len(line) > LIBRARY_TEXT:
        line = line[:LIBRARY_TEXT] + "..."
    if repeats:
        line += f" (and {repeats:,} times more in the last {LIBRARY_PERIOD / 60:.0f} min)"
    record.msg, record.args = line, None
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    if record.levelno > logging.WARNING:
        record.levelno, record.levelname = logging.WARNING, "WARNING"


class _AgentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our stderr handler, told apart from handlers others installed (pytest's)."""


def setup_logging(level: str | None, stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger: one stderr handler, journald-aware, libraries translated.

    A second call replaces the handler of the first; handlers others installed stay.

    Args:
        level: the root level name (``debug`` lets library records through as they are).
        stream: where lines go (default stderr).

    Returns:
        the handler installed.
    """
    stream = stream or sys.stderr
    handler = _AgentHandler(stream)
    if under_journald(stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AgentHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    apply_level(level or "info")
    return handler


def apply_level(level: str) -> None:
    """Set the root level; at DEBUG library records pass as they are, else translated."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    debug = root.level <= logging.DEBUG
    for handler in root.handlers:
        if not isinstance(handler, _AgentHandler):
            continue
        for old in [f for f in handler.filters if isinstance(f, LibraryFilter)]:
            handler.removeFilter(old)
        if not debug:
            handler.addFilter(LibraryFilter())
    for name in LIBRARIES:
        # Also spares formatting records nobody reads (httpx logs every POST at INFO).
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


class Transition:
    """A condition that fails and recovers, logged once per change, never per repetition.

    ``fail()`` logs its line only when the condition goes from ok to failing; ``ok()``
    logs only when it comes back, with how long it lasted. This is the "connection
    lost" / "reconnected after 37 s" pattern, written once here for every loop.

    Args:
        logger: where lines go.
        fail_level: level of the line when the condition starts failing.
        ok_level: level of the recovery line.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        logger: logging.Logger,
        fail_level: int = logging.ERROR,
        ok_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.fail_level = fail_level
        self.ok_level = ok_level
        self.clock = clock
        self.since: float | None = None

    @property
    def failing(self) -> bool:
        """True from a ``fail()`` until the next ``ok()``."""
        return self.since is not None

    def fail(self, msg: str, *args: object, level: int | None = None) -> bool:
        """The condition fails (again); logs only the first time. True when it was ok.

        ``level`` overrides ``fail_level`` for this line (DEBUG where another part
        already told the operator).
        """
        if self.since is not None:
            return False
        self.since = self.clock()
        self.logger.log(self.fail_level if level is None else level, msg, *args)
        return True

    def ok(self, msg: str, *args: object) -> bool:
        """The condition holds; logs ``msg`` + " (after N s)" only on recovery."""
        if self.since is None:
            return False
        lasted = self.clock() - self.since
        self.since = None
        self.logger.log(self.ok_level, f"{msg} (after %.0f s)", *args, lasted)
        return True


class RateLimitedLog:
    """A source's log lines, at most ``burst`` per ``period``; the rest summed up.

    Log transitions through :meth:`log`; count the repetitive events (bad frames,
    failed reads) through :meth:`count`. When a period ends, one summary line names
    the events counted since the last line logged and how many lines were held back:
    ``vib1: 1,843 bad frames in the last 60 s (12 more lines held back)``.
    The summary is written at the next call after the period (a source under a
    persistent fault calls often).

    Args:
        logger: where lines go.
        source: the name that starts every summary.
        burst: lines let through per period.
        period: seconds.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        logger: logging.Logger,
        source: str,
        *,
        burst: int = 5,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.source = source
        self.burst = burst
        self.period = period
        self._clock = clock
        self._start = clock()
        self._lines = 0
        self._held = 0
        self._held_level = logging.INFO
        self._events: Counter[str] = Counter()

    def log(self, level: int, msg: str, *args: object) -> None:
        """Log a line unless this period's burst is spent (then it is counted)."""
        self._roll()
        if self._lines < self.burst:
            self._lines += 1
            self._events.clear()  # the line reports the state; count afresh from here
            self.logger.log(level, msg, *args)
            return
        self._held += 1
        self._held_level = max(self._held_level, level)

    def count(self, what: str, n: int = 1) -> None:
        """Count ``n`` events of a kind (``"bad frames"``) for the next summary."""
        self._roll()
        self._events[what] += n

    def _roll(self) -> None:
        now = self._clock()
        if now - self._start < self.period:
            return
        elapsed = now - self._start
        self._start = now
        self._lines = 0
        if self._held or self._events:
            self._summarise(elapsed)

    def _summarise(self, elapsed: float) -> None:
        parts = [f"{n:,} {what}" for what, n in self._events.most_common()]
        text = ", ".join(parts) if parts else "no events counted"
        held = f" ({self._held:,} more lines held back)" if self._held else ""
        level = max(self._held_level, logging.WARNING) if self._events else self._held_level
        self.logger.log(level, "%s: %s in the last %.0f s%s", self.source, text, elapsed, held)
        self._lines = 1
        self._held, self._held_level = 0, logging.INFO
        self._events.clear()
