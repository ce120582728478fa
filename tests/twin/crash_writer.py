"""A twin writer for the crash test: ingests as fast as it can and acknowledges commits.

Run as ``python -m tests.twin.crash_writer DB``. Every sample's value is a pure
function of its signal and step, and step ``k`` has ``ts = T0 + k``, so the test can
check what survived. On start it resumes after the newest step in the file; after
each ``write()`` returns it prints the last step written (the acknowledgement).
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample, SignalInfo

T0 = 1_800_000_000.0
SIGNALS = [f"crash.s{i}" for i in range(20)]
STEPS_PER_BATCH = 10
CONFIG = TwinConfig.model_validate({"max_samples": 500, "sync": "normal"})


def value(sid: int, step: int) -> float:
    """The value of signal ``sid`` at ``step``."""
    return float((step * 7 + sid * 13) % 101) + 0.25


def main() -> None:
    """Write batches forever (until killed)."""
    store = SignalStore.open(Path(sys.argv[1]), CONFIG)
    store.clock = lambda: T0
    store.register([SignalInfo(name, "crash", 1.0) for name in SIGNALS])
    latest = store.latest().get(SIGNALS[-1])
    step = 0 if latest is None else int(latest.ts - T0) + 1
    print(f"start {step}", flush=True)
    while True:
        batch = [
            Sample(name, T0 + k, value(sid, k), Quality.GOOD)
            for k in range(step, step + STEPS_PER_BATCH)
            for sid, name in enumerate(SIGNALS)
        ]
        store.write(batch)
        step += STEPS_PER_BATCH
        print(f"ack {step - 1}", flush=True)


if __name__ == "__main__":
    main()
