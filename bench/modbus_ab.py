"""Modbus source cost, this tree against another: did a change cost CPU on the poll path?

``python -m bench.modbus_ab --base DIR [--rounds 4] [--seconds 8]`` runs the agent
worker of :mod:`bench.modbus_poll` (2,000 tags every 100 ms, the busiest case)
from this tree and from ``DIR`` (another checkout, e.g. ``git archive REV | tar -x
-C DIR``), and the minimal loop, interleaved round by round against one pymodbus
server process, and prints the median CPU per tag of each and their ratios. Each
worker imports ``edge_agent`` from its own tree (``python -m`` puts the working
directory first on the path).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
from pathlib import Path

from bench.modbus_poll import free_port, register_values, serve

HERE = Path(__file__).resolve().parent.parent


def cpu_per_tag(tree: Path, kind: str, port: int, seconds: float) -> float:
    """Microseconds of CPU per tag read, one worker run from ``tree``."""
    args = ["--worker", kind, "--port", str(port), "--tags", "2000", "--interval", "0.1"]
    out = subprocess.run(
        [sys.executable, "-m", "bench.modbus_poll", *args, "--seconds", str(seconds)],
        capture_output=True, text=True, check=True, cwd=tree,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["cpu"]) / float(result["samples"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", type=Path, required=True, help="the other tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    port, counter, ready = free_port(), multiprocessing.Value("q", 0), multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, register_values(2000), counter, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    runs: dict[str, list[float]] = {"base": [], "this": [], "minimal": []}
    try:
        for _ in range(args.rounds):
            runs["base"].append(cpu_per_tag(args.base, "agent", port, args.seconds))
            runs["this"].append(cpu_per_tag(HERE, "agent", port, args.seconds))
            runs["minimal"].append(cpu_per_tag(HERE, "raw", port, args.seconds))
            print({k: [round(v, 3) for v in vs] for k, vs in runs.items()}, file=sys.stderr)
    finally:
        server.terminate()
        server.join()
    median = {k: statistics.median(vs) for k, vs in runs.items()}
    for name, value in median.items():
        print(f"{name}: {value:.3f} us CPU per tag (median of {args.rounds})")
    print(f"this / base {median['this'] / median['base']:.3f}, "
          f"this / minimal {median['this'] / median['minimal']:.3f}, "
          f"base / minimal {median['base'] / median['minimal']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
