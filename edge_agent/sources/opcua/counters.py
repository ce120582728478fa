"""What an OPC UA source's sessions and subscriptions went through, counted since start.

Plain integers on one object per source that outlives sessions, incremented
where the event is handled (a session opened, a silent or ended subscription
rebuilt, a Read split); ``/metrics`` and the site view read them as they are.
No asyncua import here: the metrics module reads this without loading asyncua.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OpcuaCounts:
    """Counters of one OPC UA source since the agent started.

    Attributes:
        data_changes: data-change notifications received on subscriptions.
        sessions: sessions opened and made ready (the first, then one per reconnect).
        keepalive_misses: gaps in a subscription's publish responses longer than one
            and a half keep-alive periods (``publishing_interval x keepalive_count``),
            each counted once, also when it ended in a rebuild for silence.
        silent: subscriptions found silent (no publish response, not even a
            keep-alive, for ``silence_timeout``) and rebuilt.
        ended: subscriptions the server said it ended (a status change) and rebuilt.
        read_splits: Reads the server refused as too big, sent again in halves.
    """

    data_changes: int = 0
    sessions: int = 0
    keepalive_misses: int = 0
    silent: int = 0
    ended: int = 0
    read_splits: int = 0

    @property
    def reconnects(self) -> int:
        """Sessions opened after the first one."""
        return max(0, self.sessions - 1)

    @property
    def recreated(self) -> int:
        """Subscriptions rebuilt on a live session (silent or ended)."""
        return self.silent + self.ended
