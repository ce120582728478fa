"""The cyclic garbage collector off from ``run``'s first step until READY.

What a start allocates (the modules, the config, the signal catalogue) all lives
on, yet each collector pass scanned all of it again: at 10,000 signals that was
40 ms of CPU before READY (BENCHMARKS.md, "Time to READY at 10,000 tags (branch
s4-ready)"). So ``run`` pauses the collector before it imports the agent and
parses the config; the agent resumes it once READY is sent, and ``run`` resumes
it if the start fails. One module owns the state so that the pause and its two
ends are found together. A running agent needs the collector: without it no
reference cycle would ever be freed.
"""

from __future__ import annotations

import gc


def pause_until_ready() -> None:
    """Turn the collector off for the start (``run`` calls it first)."""
    gc.disable()


def resume() -> None:
    """Turn the collector back on: at READY, or when the start failed (idempotent)."""
    gc.enable()
