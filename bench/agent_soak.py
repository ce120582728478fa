"""Accelerated soak: do the agent's memory and its twin file stay flat?

``python -m bench.agent_soak [--minutes 20] [--env NAME=VALUE ...]`` runs one agent
(``edge-agent run``, the same Modbus server and config as :mod:`bench.agent_e2e`)
on 2,000 tags @ 100 ms with rings of 50 samples and rollups kept 1 minute, so the
raw rings fill in 5 s and the rollup rings within 3 minutes instead of days. Every
10 s it reads the agent's VmRSS and CPU time and the sizes of ``twin.db`` and its
WAL.

The verdict is taken over the last third of the run, after the start-up growth:
the least-squares slope of the RSS and the plateau (median RSS of the last third)
against the RSS one minute in. glibc keeps freed memory in its heaps and hands
it out again, so the RSS of a fresh process climbs in its first minutes before it
levels off (BENCHMARKS.md, *Where the time and memory go*; the agent now keeps one
arena and trims it once a minute, :mod:`edge_agent.heap`): a slope over the
first minutes says nothing about a day. ``twin.db`` must not grow once the rings
are full; the WAL grows to its high-water mark and is truncated back to
``journal_size_limit`` (8 MB) after a checkpoint, so it is bounded, not flat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.agent_e2e import (
    Case,
    cpu_seconds,
    modbus_server,
    notify_socket,
    start_agent,
    stop_agent,
    vm_rss,
)

SOAK = Case(2000, 0.1, ring=50)
STEP = 10.0
FLAT_MB_PER_MIN = 0.05
"""RSS slope over the last third below which the RSS counts as flat (3 MB a day)."""
WAL_BOUND_MB = 8.0 + 2.0
"""``journal_size_limit`` plus a checkpoint's worth of commits (one flush is ~1 MB here)."""


@dataclass(frozen=True)
class Point:
    """One reading: seconds since READY, RSS MB, twin.db MB, WAL MB, CPU s of the agent.

    ``anon`` and ``file`` split the RSS (RssAnon, RssFile + RssShmem): a file-backed
    climb is library code and the twin's shared WAL index paged in, not a leak.
    """

    t: float
    rss: float
    db: float
    wal: float
    cpu: float
    anon: float = 0.0
    file: float = 0.0


def rss_split(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed incl. shared memory) resident MB of ``pid``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0) + fields.get("RssShmem", 0.0)


def size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6 if path.exists() else 0.0


def soak(port: int, seconds: float, env: dict[str, str] | None = None) -> list[Point]:
    """Readings every :data:`STEP` seconds of one agent run on the soak case."""
    points = []
    with tempfile.TemporaryDirectory(prefix="soak-") as name, notify_socket(Path(name)) as sock:
        folder = Path(name)
        proc, _, _ = start_agent(SOAK, port, folder, sock, env)
        twin = folder / "data" / "twin.db"
        try:
            start = time.monotonic()
            while (now := time.monotonic() - start) < seconds:
                wal = twin.with_name("twin.db-wal")
                rss, cpu = vm_rss(proc.pid), cpu_seconds(proc.pid)
                anon, file = rss_split(proc.pid)
                points.append(Point(now, rss, size_mb(twin), size_mb(wal), cpu, anon, file))
                time.sleep(STEP - (time.monotonic() - start) % STEP)
        finally:
            stop_agent(proc, folder)
    return points


def slope(points: list[Point], field: str) -> float:
    """Least-squares slope per minute of ``field`` over the last third of the run."""
    tail = points[-max(2, len(points) // 3) :]
    if len(tail) < 2:
        return float("nan")
    xs = [p.t / 60 for p in tail]
    return statistics.linear_regression(xs, [getattr(p, field) for p in tail]).slope


def plateau(points: list[Point]) -> tuple[float, float]:
    """(RSS one minute in, median RSS of the last third)."""
    first = next((p.rss for p in points if p.t >= 60), points[0].rss)
    return first, statistics.median(p.rss for p in points[-max(1, len(points) // 3) :])


def verdict(points: list[Point]) -> list[tuple[str, str, bool]]:
    """(goal, this run, met) for RSS, twin.db and WAL."""
    rss_slope, db_slope = slope(points, "rss"), slope(points, "db")
    first, level = plateau(points)
    wal = max(p.wal for p in points)
    return [
        ("soak: flat RSS (slope over the last third)",
         f"{rss_slope:+.3f} MB/min; plateau {level:.1f} MB ({level - first:+.1f} since 1 min)",
         abs(rss_slope) < FLAT_MB_PER_MIN),
        ("soak: flat twin.db (slope over the last third)", f"{db_slope:+.3f} MB/min",
         abs(db_slope) < 0.01),
        (f"soak: WAL bounded (<= {WAL_BOUND_MB:g} MB)", f"max {wal:.1f} MB", wal <= WAL_BOUND_MB),
    ]  # fmt: skip


def curve(points: list[Point], rows: int = 12) -> str:
    """The readings, about ``rows`` of them, with the CPU share between rows."""
    step = max(1, len(points) // rows)
    picked = points[::step]
    if picked[-1] is not points[-1]:
        picked.append(points[-1])
    lines = [
        "| t min | RSS MB | anon MB | file MB | twin.db MB | WAL MB | CPU % since last row |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for before, p in zip([None, *picked], picked, strict=False):
        cpu = "-" if before is None else f"{100 * (p.cpu - before.cpu) / (p.t - before.t):.1f}"
        lines.append(
            f"| {p.t / 60:.1f} | {p.rss:.1f} | {p.anon:.1f} | {p.file:.1f} | {p.db:.2f} "
            f"| {p.wal:.2f} | {cpu} |"
        )
    return "\n".join(lines)


def report(points: list[Point], env: dict[str, str]) -> str:
    load = os.getloadavg()
    checks = ["| goal | this run | met |", "|---|---|---|"] + [
        f"| {goal} | {got} | {'yes' if ok else '**no**'} |" for goal, got, ok in verdict(points)
    ]
    extra = f" Environment: `{' '.join(f'{k}={v}' for k, v in env.items())}`." if env else ""
    return "\n\n".join([
        f"{SOAK.label}, rings of {SOAK.ring} samples, rollups kept 1 minute, "
        f"{points[-1].t / 60:.0f} minutes. Load average at the end {load[0]:.2f} (shared "
        f"machine).{extra}",
        "\n".join(checks),
        curve(points),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the soak")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the agent")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with modbus_server() as (port, _):
        points = soak(port, args.minutes * 60, env)
    body = report(points, env)
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("agent_soak", "Accelerated soak: RSS and twin file over time", body)
    sys.exit(0)


if __name__ == "__main__":
    main()
