"""One BLAS thread for the agent's numpy.

numpy's OpenBLAS starts a pool of one thread per core when numpy is imported, and
the new threads spin before they sleep: about 80 ms of CPU on a 2-core machine
before READY, more on a 4-core Pi, for threads the agent never needs. Its arrays
are small (a window of rows, a model of a few dozen weights), sizes for which
OpenBLAS computes on the calling thread anyway (BENCHMARKS.md, "One BLAS thread").
"""

from __future__ import annotations

import os

VARIABLE = "OPENBLAS_NUM_THREADS"


def one_thread() -> None:
    """Ask numpy's OpenBLAS for one thread, unless the environment already says how many.

    OpenBLAS reads the variable once, when numpy loads it: call this before anything
    imports numpy (``run`` and ``demo`` call it first). An integrator who wants the
    pool sets the variable in the unit's environment.
    """
    os.environ.setdefault(VARIABLE, "1")
