"""The error tree of edge-agent.

::

    AgentError
    ├── ConfigError     bad YAML or values; startup only -> exit code 78 (EX_CONFIG)
    ├── SourceError     link to a device failed; its poll loop backs off and re-enters
    ├── ModelError      model file missing, corrupt, or its inputs don't match the config
    ├── DeliveryError   upstream unavailable; the outbox keeps the batch
    │   └── RejectedError   upstream refused the payload itself
    ├── StorageError    the twin or the outbox (SQLite, the disk) failed: a write is held
    │   │               and retried; a data folder that cannot be written at start
    │   │               -> exit 73 (EX_CANTCREAT), which systemd does not restart
    │   └── StoreError      the twin's file in particular (missing, locked, corrupt)
    └── WriteError      a device write was refused by the device or not answered;
                        the command's reply says ``failed`` with this reason

Library exceptions are translated once, at the boundary
(``raise SourceError(...) from exc``; SQLite errors in the twin and the outbox
become ``StorageError``). A device that refuses a read
(Modbus exception, OPC UA Bad status) is not an error: it yields BAD samples.
"""

from __future__ import annotations

EX_CONFIG = 78


class AgentError(Exception):
    """Root of every error edge-agent raises on purpose."""


class ConfigError(AgentError):
    """Bad YAML or values. Raised at startup only; the process exits 78."""


class SourceError(AgentError):
    """The link to a device failed (connect, timeout, lost connection)."""


class ModelError(AgentError):
    """A model file is missing, corrupt, or does not match the config."""


class DeliveryError(AgentError):
    """Upstream unavailable: keep the batch and retry later."""


class RejectedError(DeliveryError):
    """Upstream refused the payload itself: drop it and count it."""


class RefusedError(DeliveryError):
    """Upstream refuses to take messages from us (e.g. a broker's ACL): keep them, retry,
    and say so at ERROR: unlike an outage, it ends only when someone changes upstream."""


class StorageError(AgentError):
    """The twin or the outbox could not read or write its file (SQLite error, disk full, EIO)."""


class StoreError(StorageError):
    """The twin's database failed for a reason other than a full disk (I/O, corrupt, locked)."""


class WriteError(AgentError):
    """A device write failed: the device refused it, did not answer, or is not connected."""
