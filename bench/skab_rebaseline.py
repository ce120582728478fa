"""What automatic re-baselining costs on SKAB valve1: F1, FAR and MAR through ``edge-agent replay``.

Same protocol as :mod:`bench.skab_eval` (first 400 rows calibrate, later rows
scored causally, the agent's path with its default lifecycle), int8 model; the
config adds ``rebaseline: {auto: on, after: A, steady: S}`` to the asset. A
SKAB valve1 anomaly is itself a sustained state (a valve held in another
position), so every re-baseline during one turns the rest of it into missed
rows: that is the cost measured here, against the false alarms it removes.

Usage: ``python -m bench.skab_rebaseline [--data DIR] [--no-write]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.report import write_section
from bench.skab_eval import (
    DEFAULT_DATA,
    MODELS,
    REPLAY_CONFIG,
    evaluate,
    load_runs,
    replay_detector,
)
from edge_agent.detect.model import load_model

SETTINGS: tuple[tuple[str, str], ...] = (
    ("off", ""),
    ("after 60s, steady 0.5", "      rebaseline: {auto: 'on', after: 60s, steady: 0.5}\n"),
    ("after 120s, steady 0.5", "      rebaseline: {auto: 'on', after: 120s, steady: 0.5}\n"),
    ("after 300s, steady 0.5", "      rebaseline: {auto: 'on', after: 300s, steady: 0.5}\n"),
    ("after 120s, steady 1.0", "      rebaseline: {auto: 'on', after: 120s, steady: 1.0}\n"),
)


def main(argv: list[str] | None = None) -> int:
    """Replay valve1 with each setting and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.skab_rebaseline")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    path = MODELS["int8"]
    runs = load_runs(args.data / "valve1", load_model(path).card.signals)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in SETTINGS:
            config = Path(tmp) / "skab.yaml"
            config.write_text(REPLAY_CONFIG.format(model=path) + extra)
            m = evaluate(runs, replay_detector(config, "pump"))
            print(label, {k: round(v, 3) for k, v in m.items()})
            lines.append(f"| {label} | {m['f1']:.3f} | {m['far']:.2f} | {m['mar']:.2f} |")
    if not args.no_write:
        write_section("skab_rebaseline", "Automatic re-baselining on SKAB valve1", _body(lines))
    return 0


def _body(lines: list[str]) -> str:
    table = "\n".join(lines)
    return f"""\
`python -m bench.skab_rebaseline`: valve1 (16 files) through `edge-agent replay`, int8 model,
calibration on the first 400 rows of each file, default lifecycle; the asset's
`rebaseline: {{auto: on}}` with the `after` and `steady` shown. A re-baseline clears the
open model alert and shifts the card's mean by the level change; every anomalous row after
it that no longer alarms is a missed one (MAR), every normal row that no longer alarms is a
false alarm removed (FAR).

| re-baseline | F1 | FAR % | MAR % |
|---|---|---|---|
{table}

Reading: every valve1 anomaly is one sustained state of about 400 s (the valve held in
another position) that ends by going back to the old normal; about 170 normal rows are scored
before it. A re-baseline after 60-120 s of it therefore misses the rest of the fault: MAR
doubles and F1 falls from 0.84 to 0.6-0.7. FAR falls a little, because a window that is normal
for the card before the re-baseline brings that card back (without that rule the return to
the old normal was itself alarmed: FAR 23-28 % in a first run). With `after: 300s` nothing
changes here, since the automatic variant needs `after` of normal windows before the alert to
measure the shift, and valve1 gives only about 170. The benefit (false alarms after a real
event, when the machine settles in a different state) cannot be shown on valve1, where the
machine always returns; it is what the operator command is for. Hence the default is
`auto: "off"`, and `after` must be longer than the faults the asset is watched for.
"""


if __name__ == "__main__":
    raise SystemExit(main())
