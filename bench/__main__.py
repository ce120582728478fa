"""Run every benchmark in turn: ``python -m bench`` (or ``python -m bench NAME ...``).

Each benchmark writes its own section of BENCHMARKS.md. They run one after the
other, never together, because each compares against a minimal loop measured in
the same run and two at once would skew both.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = (
    "modbus_poll",
    "opcua_read",
    "serial_read",
    "twin_ingest",
    "inference",
    "model_engine",
    "detect_step",
    "blas_threads",
    "forward_drain",
    "sparkplug_backfill",
    "command_latency",
    "sim_plant",
    "skab_eval",
    "skab_holdout",
    "nab_eval",
    "agent_e2e",
    "agent_scale",
)


def main(names: list[str]) -> int:
    """Run the named benchmarks (all by default); the exit code counts failures."""
    failed = []
    for name in names or BENCHMARKS:
        started = time.monotonic()
        print(f"== bench.{name}", flush=True)
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
