"""The C heap's policy for the agent's process: one glibc arena, fixed thresholds, a trim.

glibc gives each thread that allocates its own arena (up to 8 per core). The
agent has two busy threads: the event loop and the worker thread, which frees
what the loop built (each flush's batch) and builds and frees the flush's
columns (160-640 KB at 20,000 samples a second). In the accelerated soak (2,000
tags @ 100 ms, BENCHMARKS.md *The soak's heap levelled off*) the loop's arena
kept growing by holes: RSS 66 -> 70 MB in 8 minutes. With one arena, a trim once
a minute and the recorder's batch allocated once at its size
(:mod:`edge_agent.twin.recorder`) the heap stayed at 15.4 MB from minute 1.5 to
minute 8 and the RSS at 66 MB. One arena, a trim, or both still let it grow, and
so did the recorder's change with one arena but no trim. The CPU per
sample did not change measurably: the two threads take turns under the GIL, so
they rarely wait for the arena's lock.

:func:`fixed_thresholds` stops glibc from moving its mmap threshold up to the
largest block freed so far, which lets a late flush's larger blocks into the heap
for good (BENCHMARKS.md, *The soak, third look*).

:func:`trim` hands whole free pages inside the heap back to the kernel
(``malloc_trim(0)`` madvises them away and shrinks the heap's top); the worker
calls it after a job at most once a minute (:class:`Trimmer`). One call took
0.65-0.86 ms with the soak's heap. It holds the arena's lock for that time, but
not the GIL. Everything here is a no-op on a C library
other than glibc (musl, macOS), where neither call exists.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from functools import cache

M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc's malloc.h)."""
M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the size from which a block gets its own mapping."""
M_TRIM_THRESHOLD = -1
"""mallopt's parameter number for the free space at the heap's top that free() gives back."""
MMAP_THRESHOLD = 512 * 1024
"""Blocks of this size and more are mapped alone and unmapped when freed (see
:func:`fixed_thresholds`): above the 160 KB columns of a 20,000-sample flush."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""What glibc itself would pair with :data:`MMAP_THRESHOLD` (twice it)."""
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


def fixed_thresholds() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD`; True if set (glibc only).

    Left alone, glibc raises its mmap threshold to the size of each larger mapped
    block freed (up to 32 MB), and from then on serves blocks of that size from the
    heap. A flush that came late and carried more samples than any before made a
    block of a new largest size; once it came from the heap, the heap had no hole
    for it and could grow at its top (the soak's brk heap took steps of 0.7-0.8 MB,
    about the ring write's 640-770 KB parameter list, now gone). A soak of 25
    minutes mapped no block of 512 KB or more after READY, so this guards the
    rare large block; it did not flatten the soak alone (BENCHMARKS.md, *The soak,
    third look*). With the threshold fixed, a block of 512 KB or more is always a
    mapping of its own, so the heap's largest block is bounded; the flush's own blocks stay below it
    (20,000 samples: 160 KB columns; :func:`edge_agent.twin.queries.write_ring`
    fills a chunk's list, not one of the batch's size). Setting the threshold also
    stops glibc from moving the trim threshold, which is therefore set too.
    """
    libc = _glibc()
    if libc is None:
        return False
    mmap = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return mmap and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


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
