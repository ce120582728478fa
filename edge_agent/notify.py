"""The systemd notify protocol over ``$NOTIFY_SOCKET``: a few lines of stdlib.

``READY=1`` once the agent runs, ``STOPPING=1`` when it stops, ``WATCHDOG=1``
at half of ``$WATCHDOG_USEC``. Without ``$NOTIFY_SOCKET`` every call is a no-op,
so the agent runs the same by hand, under systemd and in tests.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines to systemd's notify socket, if there is one."""

    def __init__(self, address: str | None, watchdog_usec: int | None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._failing: set[str] = set()  # states whose last send failed (logged once)

    @classmethod
    def from_env(cls) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (ignoring a foreign WATCHDOG_PID)."""
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        watchdog = int(usec) if usec.isdigit() and int(usec) > 0 and mine else None
        return cls(os.environ.get("NOTIFY_SOCKET") or None, watchdog)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the timeout), or None when not asked."""
        if self.address is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000

    def send(self, state: str) -> None:
        """Send one state line such as ``READY=1``; errors are logged, never raised.

        Never blocks: the event loop calls it, and a receiver that stopped reading
        (its queue full) would otherwise stop the whole agent. A send that would
        block fails like any other. A failure is logged once per state until a
        send of that state works again (the watchdog pings every few seconds).
        """
        if self.address is None:
            return
        # A leading "@" names a socket in the abstract namespace.
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        kind = state.split("=")[0]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(address)
                sock.send(state.encode())
        except OSError as exc:
            if kind not in self._failing:
                self._failing.add(kind)
                log.warning("systemd notify %s failed: %s", kind, exc)
            return
        if kind in self._failing:
            self._failing.discard(kind)
            log.info("systemd notify %s works again", kind)
