"""The C heap's policy for the agent's process: one glibc arena, trimmed now and then.

glibc gives each thread that allocates its own arena (up to 8 per core). The
agent has two busy threads: the event loop, which builds each flush's batch
(a list that grows to 160 KB at 20,000 samples a second), and the worker
thread, which takes it apart into columns of the same size and frees the
batch. In two arenas each holds its own free space, the loop's arena also
receives the batches freed by the worker, and the two heaps fragment apart: in
the accelerated soak (2,000 tags @ 100 ms) the RSS crept for 8 minutes and more
(BENCHMARKS.md, *agent_soak*). With one arena the same run levelled off after
3 minutes, about 2 MB lower, at the same CPU: the two threads take turns under
the GIL, so they rarely contend for the arena's lock.

:func:`trim` hands whole free pages inside the heap back to the kernel
(``malloc_trim(0)`` madvises them away); the worker calls it after a job at most
once a minute (:class:`Trimmer`). Everything here is a no-op on a C library
other than glibc (musl, macOS), where neither call exists.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc's malloc.h)."""
TRIM_EVERY = 60.0
"""Seconds between two trims by the worker thread."""


@cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def one_arena() -> bool:
    """Make threads that have not allocated yet share the main arena.

    Call it before the worker thread starts: a thread keeps the arena it was
    given at its first allocation. Returns True if the limit was set (glibc).
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, 1))


def trim() -> bool:
    """Return the heap's free whole pages to the kernel; True if any were (glibc only)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


class Trimmer:
    """Calls :func:`trim` when called, at most once per ``every`` seconds.

    Args:
        every: seconds between two trims.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, every: float = TRIM_EVERY, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self.trims = 0
        self._next = clock() + every

    def __call__(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every
        self.trims += 1
        trim()
