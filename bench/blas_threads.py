"""What numpy's OpenBLAS pool costs a start: ``python -m bench.blas_threads [--runs 20]``.

OpenBLAS starts one thread per core when numpy loads. ``edge-agent run`` and
``demo`` ask for one thread (``OPENBLAS_NUM_THREADS=1``, :mod:`edge_agent.blas`)
unless the environment sets the variable. This measures a fresh interpreter that
imports numpy, both ways, interleaved: CPU of all its threads (rusage of the
child) and wall time. The minimal loop here is the same import with the pool.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

from bench.report import write_section

CODE = "import numpy"


def one_run(threads: str | None) -> tuple[float, float]:
    """(CPU s of every thread, wall s) of one interpreter importing numpy."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE], env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return cpu, wall


def measure(runs: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"pool": [], "one": []}
    for _ in range(runs):
        results["pool"].append(one_run(None))  # OpenBLAS' default: a thread per core
        results["one"].append(one_run("1"))
    return results


def report(results: dict[str, list[tuple[float, float]]]) -> str:
    cpu = {k: statistics.median(c for c, _ in v) for k, v in results.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in results.items()}
    runs = len(results["one"])
    return "\n".join([
        f"`{CODE}` in a fresh interpreter, {runs} runs each, interleaved; medians. "
        f"{os.cpu_count()} cores (OpenBLAS' default pool: one thread per core).",
        "",
        "| OPENBLAS_NUM_THREADS | CPU ms (all threads) | wall ms | CPU vs the default |",
        "|---|---:|---:|---:|",
        f"| unset (default pool) | {1e3 * cpu['pool']:.0f} | {1e3 * wall['pool']:.0f} | 1.00x |",
        f"| 1 (what `run` and `demo` set) | {1e3 * cpu['one']:.0f} | {1e3 * wall['one']:.0f} "
        f"| {cpu['one'] / cpu['pool']:.2f}x |",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    body = report(measure(args.runs))
    print(body)
    if not args.no_write:
        title = "One BLAS thread: numpy's import with and without the pool"
        write_section("blas_threads", title, body)


if __name__ == "__main__":
    main()
