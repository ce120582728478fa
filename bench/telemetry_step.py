"""Telemetry per minute: summaries from the twin's minute rollups vs from the raw samples.

``python -m bench.telemetry_step [--signals 2000]`` fills a twin with one minute
of 2,000 signals at 100 ms (1.2 million samples, as the agent's recorder would,
one write per second), then summarises that minute both ways and times each
(CPU of this process, best of 3): *rollups* (what ``telemetry_step`` does for
windows of whole minutes) and *raw* (what it did before: every signal's raw
history of the minute read back into Samples). The summaries are checked equal.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from edge_agent.forward.telemetry import summarize, window_summaries
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample


def fill(store: SignalStore, signals: int, start: float) -> None:
    names = [f"plc.t{i}" for i in range(signals)]
    good = Quality.GOOD
    for second in range(61):
        batch = [
            tuple.__new__(Sample, (name, start + second + k / 10, float(i + k), good))
            for k in range(10)
            for i, name in enumerate(names)
        ]
        store.write(batch)


def best_cpu(fn: object, runs: int = 3) -> float:
    best = math.inf
    for _ in range(runs):
        began = time.process_time()
        fn()  # type: ignore[operator]
        best = min(best, time.process_time() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--signals", type=int, default=2000)
    args = parser.parse_args()
    start = math.floor(time.time() / 60) * 60 - 120
    with tempfile.TemporaryDirectory() as folder:
        config = TwinConfig.model_validate({"sync": "normal", "max_samples": 1000})
        store = SignalStore.open(Path(folder) / "twin.db", config)
        fill(store, args.signals, start)
        end = start + 60

        def raw() -> list[object]:
            found = [
                summarize(i, store.history(i.signal, start, end), start, end)
                for i in store.signals()
            ]
            return [s for s in found if s is not None]

        assert window_summaries(store, start, end) == raw()
        fast, slow = best_cpu(lambda: window_summaries(store, start, end)), best_cpu(raw)
        store.close()
    samples = args.signals * 600
    print(
        f"| signals | samples in the minute | rollups CPU s | raw CPU s | raw / rollups |\n"
        f"|---:|---:|---:|---:|---:|\n"
        f"| {args.signals:,} | {samples:,} | {fast:.4f} | {slow:.3f} | {slow / fast:.0f}x |"
    )


if __name__ == "__main__":
    main()
