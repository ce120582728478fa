"""``edge-agent calibrate``, ``rebaseline`` and ``replay``: detection tools for the command line.

Heavy modules (onnxruntime, the twin) are imported inside the handlers so that
``edge-agent --help`` stays fast. Exit codes: 0 done, 65 (EX_DATAERR) unusable
input data (a CSV or a history that cannot calibrate), 74 (EX_IOERR) the twin
cannot be read, 78 bad config or model (raised as ConfigError/ModelError to the CLI).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.cli.flags import renamed
from edge_agent.errors import AgentError, ConfigError, ModelError
from edge_agent.schema import parse_duration

if TYPE_CHECKING:
    import numpy as np

    from edge_agent.config import AgentConfig
    from edge_agent.detect.asset import AssetDetector
    from edge_agent.detect.calibrate import Series
    from edge_agent.detect.card import ModelCard
    from edge_agent.detect.config import AssetConfig
    from edge_agent.detect.detector import Detector
    from edge_agent.detect.model import AnomalyModel
    from edge_agent.detect.replay import Row, Table
    from edge_agent.detect.slot import ModelSlot
    from edge_agent.types import Alert

EX_DATAERR = 65
EX_IOERR = 74


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calibrate`` and ``replay`` to the ``edge-agent`` command."""
    p = subparsers.add_parser(
        "calibrate", help="learn an asset's normalisation and threshold from the twin's history"
    )
    p.add_argument("--config", "-c", type=Path, required=True)
    p.add_argument("--asset", required=True, help="asset name (detect.assets[].name)")
    p.add_argument("--since", default="7d", help="history to learn from (default 7d)")
    p.add_argument("--until", default=None, help="ignore the most recent DURATION (e.g. 1h)")
    p.add_argument("--rollback", action="store_true", help="put the previous card version back")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print old and new card side by side, what each would raise; write nothing",
    )
    p.add_argument(
        "--force", action="store_true", help="accept a threshold change beyond calibrate.max_change"
    )
    p.set_defaults(func=calibrate_command)

    p = subparsers.add_parser(
        "rebaseline",
        help='"this is the new normal": move the card\'s mean to recent running history',
    )
    p.add_argument("--config", "-c", type=Path, required=True)
    p.add_argument("--asset", required=True, help="asset name (detect.assets[].name)")
    p.add_argument("--since", default="1h", help="recent history that is the new normal (1h)")
    p.add_argument("--until", default=None, help="ignore the most recent DURATION")
    p.add_argument("--dry-run", action="store_true", help="show both cards; write nothing")
    p.add_argument("--force", action="store_true", help="accept less than calibrate.min_windows")
    p.set_defaults(func=rebaseline_command)

    p = subparsers.add_parser("replay", help="run the live detection path over a CSV of history")
    p.add_argument("--config", "-c", type=Path, required=True)
    p.add_argument("--asset", required=True, help="asset name (detect.assets[].name)")
    p.add_argument("--data", type=Path, required=True, help="CSV: time column + one per signal")
    renamed(p, "--csv", "--data")
    p.add_argument(
        "--calibrate-rows",
        type=int,
        default=0,
        metavar="N",
        help="calibrate on the first N rows (in memory), score the rest",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output CSV: ts,score,alarm (ts,rul: a prognostic asset)",
    )
    p.add_argument(
        "--alerts", type=Path, default=None, help="also write the alert events (JSON lines)"
    )
    p.set_defaults(func=replay_command)


def _asset(config: AgentConfig, name: str) -> tuple[int, AssetConfig]:
    """The asset named ``name`` and its index in ``detect.assets``."""
    for index, asset in enumerate(config.detect.assets):
        if asset.name == name:
            return index, asset
    known = ", ".join(a.name for a in config.detect.assets) or "none"
    raise ConfigError(f"no asset {name!r} in detect.assets (known: {known})")


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def calibrate_command(args: argparse.Namespace) -> int:
    """Fit the asset's card to the twin's history and save it as a new version."""
    from edge_agent.detect import calibrate

    config = load_config_for(args)
    asset, slot = _anomaly_asset(config, args.asset, "calibrate")
    model, signals, path = slot.model, slot.signals, slot.path
    if args.rollback:
        card = calibrate.rollback(path, model.card)
        print(
            f"{asset.name}: card v{card.version} is current again (threshold {card.threshold:.4g})"
        )
        return 0
    try:
        segments = _calibration_history(config, asset, signals, model.card.step, args)
    except AgentError as exc:  # the twin's StoreError: missing or unreadable file
        print(f"edge-agent calibrate: {exc}", file=sys.stderr)
        return EX_IOERR
    refusal = _too_short(asset, calibrate.usable_windows(segments, model.card.window))
    if refusal:
        print(f"edge-agent calibrate: {refusal}", file=sys.stderr)
        return EX_DATAERR
    try:
        fitted = calibrate.fit_card(model, segments)
    except ModelError as exc:
        print(f"edge-agent calibrate: {asset.name}: {exc}", file=sys.stderr)
        return EX_DATAERR
    if args.dry_run:
        print(_side_by_side(config, asset, model, fitted, segments, signals))
        return 0
    refusal = "" if args.force else _too_far(asset, model.card.threshold, fitted.threshold)
    if refusal:
        print(f"edge-agent calibrate: {refusal}", file=sys.stderr)
        return EX_DATAERR
    card, saved = calibrate.save(path, model.card, fitted)
    print(
        f"{asset.name}: card v{card.version} written to {saved.name} and made current "
        f"(threshold {model.card.threshold:.4g} -> {card.threshold:.4g}, "
        f"{card.info.get('calibrated_rows')} rows); previous: v{model.card.version}"
    )
    return 0


def _too_short(asset: AssetConfig, have: int) -> str:
    """The refusal of a history with fewer usable windows than ``calibrate.min_windows``."""
    need = asset.calibrate.min_windows
    if have >= need:
        return ""
    return (
        f"{asset.name}: refused: {have} usable window(s) in the history (complete, machine "
        f"running, not in alarm); calibration needs at least {need} "
        f"(detect.assets[].calibrate.min_windows: whole load cycles). Let more history "
        f"accumulate or widen --since."
    )


def _too_far(asset: AssetConfig, old: float, new: float) -> str:
    """The refusal of a threshold change beyond ``calibrate.max_change``."""
    ratio, limit = new / old, asset.calibrate.max_change
    if 1 / limit <= ratio <= limit:
        return ""
    return (
        f"{asset.name}: refused: the threshold would change {ratio:.2g}x ({old:.4g} -> "
        f"{new:.4g}), beyond calibrate.max_change {limit:g}; look with --dry-run, then use --force"
    )


def rebaseline_command(args: argparse.Namespace) -> int:
    """Write a card whose mean is that of recent running history (alarms included)."""
    import numpy as np

    from edge_agent.detect import calibrate
    from edge_agent.detect.baseline import rebaselined_card

    config = load_config_for(args)
    asset, slot = _anomaly_asset(config, args.asset, "rebaseline")
    model, signals, path = slot.model, slot.signals, slot.path
    try:
        segments = _calibration_history(config, asset, signals, model.card.step, args, False)
    except AgentError as exc:
        print(f"edge-agent rebaseline: {exc}", file=sys.stderr)
        return EX_IOERR
    have = calibrate.usable_windows(segments, model.card.window)
    if have < asset.calibrate.min_windows and not (args.force and have > 0):
        print(
            f"edge-agent rebaseline: {asset.name}: refused: {have} usable window(s) of running "
            f"history; a new normal needs at least {asset.calibrate.min_windows} "
            f"(calibrate.min_windows: whole load cycles, else the mean leans to one phase); "
            f"--force accepts fewer",
            file=sys.stderr,
        )
        return EX_DATAERR
    rows = np.concatenate(segments)
    card = rebaselined_card(model.card, rows, {"rebaselined_rows": len(rows)})
    if args.dry_run:
        print(_side_by_side(config, asset, model, card, segments, signals))
        return 0
    saved_card, saved = calibrate.save(path, model.card, card)
    print(
        f"{asset.name}: new normal from {len(rows)} rows: card v{saved_card.version} written to "
        f"{saved.name} and made current (threshold kept at {card.threshold:.4g}); "
        f"previous: v{model.card.version} (edge-agent calibrate --rollback)"
    )
    return 0


def _calibration_history(
    config: AgentConfig,
    asset: AssetConfig,
    signals: list[str],
    step: float,
    args: argparse.Namespace,
    normal_only: bool = True,
) -> list[np.ndarray]:
    """Complete rows of running history (not in alarm unless ``normal_only`` is False)."""
    from edge_agent.detect import calibrate
    from edge_agent.detect.runstate import RunState

    now = time.time()
    until = now - _duration(args.until, "--until") if args.until else now
    since = now - _duration(args.since, "--since")
    run = RunState.parse(asset.run_state) if asset.run_state else None
    extra = [run.signal] if run is not None else []
    # The asset's own recorded alarm marks history that was not normal.
    wanted = [*signals, f"detect.{asset.name}.alarm", *extra]
    history = _history(config, wanted, since, until)
    series, alarm = history[: len(signals)], history[len(signals)]
    running = (run, history[-1]) if run is not None else None
    fill = asset.fill_limit if asset.fill_limit is not None else 3.0 * step
    exclude = alarm if normal_only else None
    return calibrate.history_segments(series, step, fill, until, exclude=exclude, running=running)


def _side_by_side(
    config: AgentConfig,
    asset: AssetConfig,
    model: AnomalyModel,
    fitted: ModelCard,
    segments: list[np.ndarray],
    signals: list[str],
) -> str:
    """Old and new card, and what each would have raised over the same history."""
    from edge_agent.detect.calibrate import usable_windows, would_raise

    old, new = model.card, fitted
    chatter = config.detect.alarms.chatter()
    gates = (asset.raise_after.gate(), asset.clear_after.gate(), asset.clear_below, chatter)
    was = would_raise(model, segments, *gates)
    will = would_raise(model.with_card(new), segments, *gates)
    windows = usable_windows(segments, old.window)
    lines = [
        f"{asset.name}: dry run over {windows} usable windows (nothing written)",
        f"{'':28} {'current v' + str(old.version):>16} {'new':>16}",
        f"{'threshold':28} {old.threshold:>16.4g} {new.threshold:>16.4g}",
    ]
    for i, name in enumerate(signals):
        lines.append(f"{'mean ' + name:28} {old.mean[i]:>16.4g} {new.mean[i]:>16.4g}")
        lines.append(f"{'std ' + name:28} {old.std[i]:>16.4g} {new.std[i]:>16.4g}")
    lines.append(f"{'windows >= threshold':28} {was[0]:>16} {will[0]:>16}")
    lines.append(f"{'alerts it would raise':28} {was[1]:>16} {will[1]:>16}")
    return "\n".join(lines)


def _history(config: AgentConfig, signals: list[str], since: float, until: float) -> list[Series]:
    import numpy as np

    from edge_agent.twin.store import SignalStore
    from edge_agent.types import Quality

    store = SignalStore.open(config.data_path(config.twin.path), config.twin, readonly=True)
    try:
        out: list[Series] = []
        for signal in signals:
            samples = store.history(signal, since, until)
            ts = np.array([s.ts for s in samples], dtype=np.float64)
            values = np.array(
                [
                    np.nan if s.quality is Quality.BAD or s.value is None else s.value
                    for s in samples
                ],
                dtype=np.float64,
            )
            out.append((ts, values))
        return out
    finally:
        store.close()


def replay_command(args: argparse.Namespace) -> int:
    """Replay a CSV through Windows + Detector.step and write its rows (see replay.columns)."""
    from edge_agent.detect import replay

    config = load_config_for(args)
    name = args.asset
    detector = _one_asset(config, name)
    prognostic = name in detector.prognostic
    signals = (
        detector.prognostic[name].signals if prognostic else detector.assets[name].slot.signals
    )
    rule_signals = [r.config.signal for r in detector.rules]
    try:
        if prognostic and args.calibrate_rows > 0:
            raise ModelError(f"{name}: a prognostic model takes no --calibrate-rows")
        table = replay.read_table(args.data, signals, optional=rule_signals)
        if args.calibrate_rows > 0:
            _calibrate_in_memory(detector.assets[name], table, args.calibrate_rows)
    except (replay.ReplayError, ModelError) as exc:
        print(f"edge-agent replay: {exc}", file=sys.stderr)
        return EX_DATAERR
    # Rules whose signal has no column would only report BAD quality: leave them out.
    detector.rules = [r for r in detector.rules if r.config.signal in table.values]
    alerts: list[Alert] = []
    rows_out = replay.replay(detector, name, table, args.calibrate_rows, alerts)
    replay.write_rows(args.out, rows_out, replay.columns(detector, name))
    if getattr(args, "alerts", None):
        replay.write_alerts(args.alerts, alerts)
    print(_replay_summary(detector, name, rows_out, len(alerts), args.out))
    return 0


def _replay_summary(detector: Detector, name: str, rows: list[Row], events: int, out: Path) -> str:
    estimated = sum(r.prognosis is not None for r in rows)
    if name in detector.prognostic:
        unit = detector.prognostic[name].model.card.unit
        return f"{name}: {len(rows)} rows, {estimated} with a remaining life ({unit}) -> {out}"
    scored = sum(r.score is not None for r in rows)
    alarms = sum(r.alarm for r in rows)
    threshold = detector.assets[name].threshold
    return (
        f"{name}: {len(rows)} rows, {scored} scored, {alarms} in alarm "
        f"(threshold {threshold:.4g}), {events} alert event(s) -> {out}"
    )


def load_config_for(args: argparse.Namespace) -> AgentConfig:
    """The config named by ``--config``, for commands that read files only (no secrets)."""
    from edge_agent.config import load_config

    return load_config(args.config, offline=True)


def _one_asset(config: AgentConfig, name: str) -> Detector:
    """A detector of one asset and its rules, loaded and checked as ``run`` loads them.

    :meth:`Detector.load` told the asset's place in the file, as ``check-config``'s
    loader is: a ModelError (a model missing, corrupt, not fitting the asset, or not of
    the kind its ``prognosis.type`` asks for; exit 78) starts with
    ``file:line: detect.assets[N].model:``.
    """
    from edge_agent.detect.detector import Detector
    from edge_agent.preflight import model_key

    index, asset = _asset(config, name)
    # A tool has no samples in flight: no settle time; and its model does not change.
    asset = asset.model_copy(update={"reload": "off", "settle": 0.0})
    rules = [r for r in config.detect.rules if r.asset_name == asset.name]
    only = config.detect.model_copy(update={"assets": [asset], "rules": rules})
    return Detector.load(only, config.config_path, lambda _: model_key(config, index))


def _anomaly_asset(config: AgentConfig, name: str, command: str) -> tuple[AssetConfig, ModelSlot]:
    """The anomaly asset ``command`` fits a card for, and its loaded model (:func:`_one_asset`).

    Raises:
        ModelError: as :func:`_one_asset`'s, or the asset's model is prognostic.
    """
    from edge_agent.preflight import model_key

    detector = _one_asset(config, name)
    if name in detector.prognostic:
        index, _ = _asset(config, name)
        model = detector.prognostic[name].model.path.name
        raise ModelError(
            f"{model_key(config, index)}: asset {name}: {command} fits an anomaly model's card,"
            f" {model} is prognostic"
        )
    runner = detector.assets[name]
    return runner.config, runner.slot


def _calibrate_in_memory(runner: AssetDetector, table: Table, rows: int) -> None:
    from edge_agent.detect.calibrate import fit_card, history_segments

    series = [table.series(s, slice(0, rows)) for s in runner.slot.signals]
    segments = history_segments(series, runner.slot.card.step, runner.fill_limit)
    runner.slot.use_card(fit_card(runner.slot.model, segments))
