"""Convert a NASA C-MAPSS text file into the CSV that ``edge-agent replay`` reads.

    python to_replay_csv.py /work/shared/data/cmapss/train_FD001.txt /tmp/fd001.csv

One row per cycle, one cycle per second, engines one after another with an
hour between them (see :mod:`rul_data`). The data is NASA's: write the CSV
where you need it, never into the repository.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_agent.train.rul_data import read_cmapss, read_replay_csv, write_replay_csv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="train_FD00x.txt or test_FD00x.txt")
    parser.add_argument("target", type=Path, help="CSV to write")
    args = parser.parse_args(argv)
    engines = read_cmapss(args.source)
    rows = write_replay_csv(engines, args.target)
    back = read_replay_csv(args.target)
    same = len(back) == len(engines) and all(
        a.unit == b.unit and np.array_equal(a.values, b.values)
        for a, b in zip(engines, back, strict=True)
    )
    verdict = "ok" if same else "DIFFERS"
    print(f"{args.target}: {rows} rows, {len(engines)} engines, round trip {verdict}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
