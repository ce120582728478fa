"""The process's own series at ``/metrics``: CPU, memory, start time, file descriptors, Python.

The names, help texts and values are those prometheus_client's process and platform
collectors gave before the agent wrote its own exposition (:mod:`edge_agent.exposition`),
so dashboards and alerts built on them keep working. On Linux they are read from
``/proc/self`` at each scrape; what cannot be read (another system, a hidden
``/proc``) is left out rather than reported as 0.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from edge_agent.exposition import Family, counter, gauge

PROC = Path("/proc")

_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy", "ironpython": "IronPython"}


def process_families(proc: Path = PROC) -> list[Family]:
    """Every process family that can be read here, then ``python_info``."""
    families = _stat_families(proc)
    families += _fd_families(proc)
    families.append(python_info())
    return families


def _stat_families(proc: Path) -> list[Family]:
    try:
        # The fields after the command name, which may itself hold spaces and ")".
        fields = (proc / "self" / "stat").read_bytes().rsplit(b")", 1)[1].split()
        boot = boot_time(proc)
    except (OSError, IndexError, ValueError):
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    values = (
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", float(fields[20])),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            float(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            float(fields[19]) / ticks + boot,
        ),
    )
    families = [_one(gauge(name, doc), value) for name, doc, value in values]
    cpu = counter("process_cpu_seconds", "Total user and system CPU time spent in seconds.")
    families.append(_one(cpu, (float(fields[11]) + float(fields[12])) / ticks))
    return families


@functools.cache
def boot_time(proc: Path = PROC) -> float:
    """When the system booted (Unix seconds, ``btime`` of ``/proc/stat``): read once.

    Raises:
        OSError: ``/proc/stat`` cannot be read.
        ValueError: it has no ``btime`` line.
    """
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def _fd_families(proc: Path) -> list[Family]:
    families = []
    try:
        count = len(os.listdir(proc / "self" / "fd"))
        families.append(_one(gauge("process_open_fds", "Number of open file descriptors."), count))
    except OSError:
        pass
    limit = max_fds(proc)
    if limit is not None:
        doc = "Maximum number of open file descriptors."
        families.append(_one(gauge("process_max_fds", doc), limit))
    return families


def max_fds(proc: Path = PROC) -> float | None:
    """The soft limit on open files (``/proc/self/limits``); None when not readable."""
    try:
        text = (proc / "self" / "limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return float("inf") if soft == "unlimited" else float(soft)
    return None


def python_info() -> Family:
    """Constant 1 labelled with the interpreter's implementation and version."""
    version = sys.version.split()[0]  # "3.11.7" (or "3.13.0rc1": patch level "0rc1")
    major, minor, patch = [*version.split(".", 2), "", ""][:3]
    name = sys.implementation.name
    labels = ("implementation", "major", "minor", "patchlevel", "version")
    family = gauge("python_info", "Python platform information", labels)
    family.add([_IMPLEMENTATIONS.get(name, name), major, minor, patch, version], 1.0)
    return family


def _one(family: Family, value: float) -> Family:
    family.add((), float(value))
    return family
