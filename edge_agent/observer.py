"""An optional watcher of the flow (the demo's screen), told of samples and alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from edge_agent.types import Alert, Sample

log = logging.getLogger(__name__)


class Observer(Protocol):
    """Optional watcher of the flow (the demo's screen); called on the event loop."""

    def on_samples(self, batch: Sequence[Sample]) -> None: ...

    def on_alerts(self, alerts: Sequence[Alert]) -> None: ...


def tell(hook: Callable[[Any], None], items: Sequence[Any]) -> None:
    """Call an observer hook; a bug in a watcher must not stop the flow it watches."""
    try:
        hook(items)
    except Exception:
        log.exception("observer %s failed", getattr(hook, "__qualname__", hook))
