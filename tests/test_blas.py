"""``run`` asks numpy's OpenBLAS for one thread, unless the environment says otherwise.

OpenBLAS starts one thread per core when numpy loads, and the agent never needs
them (edge_agent/blas.py). Counted from outside: the agent's threads after READY,
started once as installed (variable unset) and once with the variable set to 2 by
the integrator, which must be obeyed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge_agent.blas import VARIABLE


def _threads_after_ready(tmp_path: Path, blas: str | None) -> int:
    folder = tmp_path / (blas or "unset")
    folder.mkdir()
    config = folder / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"id": "gw", "data_dir": str(folder / "data")},
        "sources": [],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if blas is not None:
        env[VARIABLE] = blas
    log = folder / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(config)], stderr=err, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while "running" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # threads started at READY (web server, worker) are up
        return len(os.listdir(f"/proc/{proc.pid}/task"))
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_run_starts_no_blas_pool_unless_the_environment_asks(tmp_path: Path) -> None:
    unset = _threads_after_ready(tmp_path, None)
    asked = _threads_after_ready(tmp_path, "2")
    assert asked == unset + 1  # the integrator's pool of 2: one thread beside the caller
