"""The error tree of edge-agent.

::

    AgentError
    ├── ConfigError     bad YAML or values; startup only -> exit code 78 (EX_CONFIG)
    ├── SourceError     link to a device failed; its poll loop backs off and re-enters
    ├── ModelError      model file missing, corrupt, or its inputs don't match the config
    ├── DeliveryError   upstream unavailable; the outbox keeps the batch
    │   └── RejectedError   upstream refused the payload itself
    └── WriteError      a device write was refused by the device or not answered;
                        the command's reply says ``failed`` with this reason

Library exceptions are translated once, at the boundary
(``raise SourceError(...) from exc``). A device that refuses a read
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


class WriteError(AgentError):
    """A device write failed: the device refused it, did not answer, or is not connected."""
