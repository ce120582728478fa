"""``edge-agent train``: train a model offline (the ``[train]`` extra).

``--kind anomaly`` (the default): the recipe lives in :mod:`edge_agent.train.pipeline`;
this module is only its flags. ``--kind prognostic``: a remaining-useful-life model
(:mod:`edge_agent.train.rul_pipeline`, which owns its flags).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge_agent.errors import ModelError
from edge_agent.train.fit import Recipe
from edge_agent.train.pipeline import train

KINDS = ("anomaly", "prognostic")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge_agent.train.pipeline", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="anomaly",
        help="anomaly (default) or prognostic (see --kind prognostic --help)",
    )
    p.add_argument(
        "--data", type=Path, action="append", default=[], help="normal CSV file or folder"
    )
    p.add_argument(
        "--calibration-data",
        type=Path,
        action="append",
        default=[],
        help="runs of which only the first --calibrate-rows rows are read",
    )
    p.add_argument(
        "--calibrate-rows",
        type=int,
        default=None,
        help="normalise each run by its first N rows (per-run calibration)",
    )
    p.add_argument("--out", type=Path, required=True, help="int8 model path, e.g. models/pump.onnx")
    p.add_argument("--name", default=None, help="model name (default: file stem)")
    p.add_argument("--signals", default=None, help="comma-separated CSV columns")
    p.add_argument("--names", default=None, help="comma-separated signal names for the card")
    p.add_argument("--window", type=int, default=15, help="steps per window (default 15)")
    p.add_argument("--components", type=int, default=1, help="PCA components (default 1)")
    p.add_argument(
        "--quantile", type=float, default=1.0, help="threshold quantile of normal scores"
    )
    p.add_argument("--factor", type=float, default=2.0, help="threshold = factor x quantile")
    p.add_argument("--step", type=float, default=1.0, help="seconds between rows (default 1)")
    p.add_argument(
        "--tflite", action="store_true", help="also write <stem>_int8.tflite and <stem>_fp32.tflite"
    )
    p.add_argument(
        "--simulate",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="add normal runs of the simulated plant (seeds 1-4, this long each); "
        "signals are then named as the agent sees them (pump1.flow ...)",
    )
    return p


def _simulated(seconds: float, folder: Path) -> list[Path]:
    """Normal runs of the simulated plant as CSV files (deterministic per seed)."""
    from edge_agent.sim.physics import simulate, write_csv

    paths = []
    for seed in range(1, 5):
        path = folder / f"sim_normal_seed{seed}.csv"
        write_csv(path, simulate(seconds, seed=seed))
        paths.append(path)
    return paths


def _agent_names(columns: list[str] | None) -> list[str] | None:
    from edge_agent.sim.agent_config import AGENT_SIGNALS

    return [AGENT_SIGNALS.get(c, c) for c in columns] if columns else None


def _split(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",")] if text else None


def _kind(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``--kind`` (either spelling) and the other arguments."""
    rest, kind, args = [], "anomaly", list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--kind" and args:
            kind = args.pop(0)
        elif arg.startswith("--kind="):
            kind = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return kind, rest


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    kind, rest = _kind(sys.argv[1:] if argv is None else argv)
    if kind == "prognostic":
        from edge_agent.train.rul_pipeline import main as train_prognostic

        try:
            return train_prognostic(rest)
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe = Recipe(
        name=args.name or args.out.stem,
        window=args.window,
        components=args.components,
        calibrate_rows=args.calibrate_rows,
        quantile=args.quantile,
        factor=args.factor,
        step=args.step,
    )
    signals, names = _split(args.signals), _split(args.names)
    with tempfile.TemporaryDirectory() as tmp:
        data = list(args.data)
        if args.simulate > 0:
            data += _simulated(args.simulate, Path(tmp))
            names = names or _agent_names(signals)
        try:
            card = train(
                data,
                args.out,
                recipe,
                cal_data=args.calibration_data,
                signals=signals,
                names=names,
                tflite=args.tflite,
            )
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    check = card.info["vs_fp32"]
    size = args.out.stat().st_size
    print(f"wrote {args.out} (int8, {size} bytes with its card), threshold {card.threshold:.4g}")
    print(
        f"int8 vs fp32 on {check['windows']} normal windows: corr {check['score_corr']}, "
        f"median rel err {check['score_rel_err_median']}, "
        f"alarm disagreement {check['alarm_disagreement']:.2%}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``edge-agent train ...``: the offline trainer (needs the ``[train]`` extra)."""
    p = subparsers.add_parser(
        "train", help="train an anomaly or prognostic model offline ([train] extra)", add_help=False
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: main(args.args))


if __name__ == "__main__":
    raise SystemExit(main())
