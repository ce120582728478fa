"""``run`` asks numpy's OpenBLAS for one thread, unless the environment says otherwise.

OpenBLAS starts one thread per core when numpy loads, and the agent never needs
them (edge_agent/blas.py). Counted from outside: the agent's threads after READY,
started once as installed (variable unset) and once with the variable set to 2 by
the integrator, which must be obeyed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edge_agent.blas import VARIABLE
from tests.test_storage_guard import Agent, _config


def _threads_after_ready(tmp_path: Path, blas: str | None) -> int:
    folder = tmp_path / (blas or "unset")
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if blas is not None:
        env[VARIABLE] = blas
    agent = Agent(_config(folder, folder / "data"), folder / "stderr.log", env)
    try:
        agent.wait_for("running", within=30)
        time.sleep(0.5)  # threads started at READY (web server, worker) are up
        return len(os.listdir(f"/proc/{agent.proc.pid}/task"))
    finally:
        agent.stop()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc")
def test_run_starts_no_blas_pool_unless_the_environment_asks(tmp_path: Path) -> None:
    unset = _threads_after_ready(tmp_path, None)
    asked = _threads_after_ready(tmp_path, "2")
    assert asked == unset + 1  # the integrator's pool of 2: one thread beside the caller
