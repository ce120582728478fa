"""Alarm quality: escalation, run-state, chattering, acknowledge and shelve, event ids."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.cli.main import main as cli_main
from edge_agent.detect.config import AssetConfig, DetectConfig, ThresholdRuleConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.detect.requests import Request
from edge_agent.detect.rules import Rule
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.encode import decode, event_id
from edge_agent.forward.outbox import Outbox
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertState, Severity
from edge_agent.worker import Worker
from tests.detect.tiny import SIGNALS, good, rows, square_model

T0 = 1_800_000_000.0


def model_detector(tmp_path: Path, **asset: object) -> Detector:
    square_model(tmp_path / "tiny.onnx")
    fields: dict[str, object] = {"name": "pump", "model": "tiny.onnx", "settle": "0s"}
    fields.update(signals=list(SIGNALS), **asset)
    config = DetectConfig(assets=[AssetConfig.model_validate(fields)])
    return Detector.load(config, lambda p: tmp_path / p)


def feed(
    det: Detector, windows: Windows, levels: list[float], t0: float, run: list[float] | None = None
) -> list[Alert]:
    """One step per second; every signal reads ``level`` (score = level**2)."""
    out = []
    for i, level in enumerate(levels):
        windows.append(rows(t0 + i, [level] * 3))
        if run is not None:
            windows.append([good("pump.run", t0 + i, run[i])])
        out += det.step(windows, t0 + i)
    return out


def test_severity_escalates_once_under_the_same_id_and_never_drops(tmp_path: Path) -> None:
    det, windows = model_detector(tmp_path), Windows(1000)
    # warning (score 1.21), then critical (score 4 >= 2 x 1), then back to warning, then normal.
    levels = [0.0] * 5 + [1.1] * 8 + [2.0] * 8 + [1.1] * 8 + [0.0] * 10
    alerts = feed(det, windows, levels, T0)
    states = [(a.state, a.severity) for a in alerts]
    assert states == [
        (AlertState.RAISED, Severity.WARNING),
        (AlertState.SEVERITY, Severity.CRITICAL),
        (AlertState.CLEARED, Severity.CRITICAL),
    ]
    assert len({a.id for a in alerts}) == 1
    escalated = alerts[1]
    assert escalated.extra["update"] == 1 and "escalated to critical" in escalated.reason
    # k of n, as for the raise: the third critical window escalates, not the first.
    assert escalated.window_end >= T0 + 13 + 2
    assert len({event_id(a) for a in alerts}) == 3


def test_escalation_undoes_an_acknowledgement(tmp_path: Path) -> None:
    det, windows = model_detector(tmp_path), Windows(1000)
    raised = feed(det, windows, [0.0] * 5 + [1.1] * 6, T0)
    assert [a.state for a in raised] == [AlertState.RAISED]
    ack, result = det.apply(Request(1, T0 + 11, "ack", raised[0].id[:6], by="ana"), T0 + 11)
    assert ack is not None and ack.state is AlertState.ACKNOWLEDGED, result
    assert ack.extra["acknowledged"]["by"] == "ana"
    again, result = det.apply(Request(2, T0 + 12, "ack", raised[0].id), T0 + 12)
    assert again is None and "nothing to change" in result
    worse = feed(det, windows, [2.0] * 6, T0 + 11)
    assert [a.state for a in worse] == [AlertState.SEVERITY]
    assert "acknowledged" not in worse[0].extra and worse[0].extra["update"] == 2


def test_run_state_clears_an_open_alert_and_keeps_stops_quiet(tmp_path: Path) -> None:
    det, windows = model_detector(tmp_path, run_state="pump.run > 0.5"), Windows(1000)
    assert "pump.run" in det.signals()
    # Running with a fault: raised. The machine stops (values collapse, which the
    # model would call a fault too): cleared with its reason, nothing raised while off.
    levels = [0.0] * 5 + [2.0] * 6 + [3.0] * 30 + [0.0] * 20
    run = [1.0] * 11 + [0.0] * 30 + [1.0] * 20
    alerts = feed(det, windows, levels, T0, run)
    assert [a.state for a in alerts] == [AlertState.RAISED, AlertState.CLEARED]
    cleared = alerts[1]
    assert cleared.reason.startswith("machine stopped (pump.run > 0.5)")
    assert cleared.extra["stopped"] is True and cleared.window_end == T0 + 11
    # While stopped no window was scored (score and alarm are not recorded).
    last = det.scores()["pump"]
    assert last is not None and last.ts >= T0 + 41 + 4


def test_rules_follow_the_assets_run_state_except_bad_quality(tmp_path: Path) -> None:
    square_model(tmp_path / "tiny.onnx")
    asset = AssetConfig.model_validate(
        {"name": "pump", "model": "tiny.onnx", "signals": list(SIGNALS), "run_state": "pump.run"}
    )
    rules = [
        {"name": "low", "type": "threshold", "signal": "pump.temp", "below": 5.0},
        {"name": "oil", "type": "bad_quality", "signal": "pump.oil", "max_age": "5s"},
    ]
    config = DetectConfig.model_validate({"rules": rules})
    config.assets.append(asset)
    det = Detector.load(config, lambda p: tmp_path / p)
    windows = Windows(1000)
    events = []
    for i in range(20):
        windows.append([good("pump.temp", T0 + i, 1.0), good("pump.run", T0 + i, float(i < 10))])
        for rule in det.rules:
            event = rule.step(windows, T0 + i)
            events += [(rule.config.name, event.state, event.reason)] if event else []
    assert [e[:2] for e in events] == [
        ("low", AlertState.RAISED),
        ("oil", AlertState.RAISED),  # a sensor gone is an alarm whether the machine runs or not
        ("low", AlertState.CLEARED),
    ]
    assert events[2][2] == "machine stopped (pump.run)"
    assert det.rules[1].tracker.is_open


def chattering_rule(count: int) -> tuple[Rule, Detector]:
    config = ThresholdRuleConfig.model_validate(
        {"name": "hot", "type": "threshold", "signal": "oven.temp", "above": 100.0}
    )
    det = Detector(
        DetectConfig.model_validate(
            {"alarms": {"chatter_count": count, "chatter_within": "10m", "chatter_hold": "1m"}}
        ),
        [],
        [Rule(config)],
    )
    return det.rules[0], det


def test_chattering_alert_is_flagged_and_held(tmp_path: Path) -> None:
    rule, det = chattering_rule(3)
    windows, events = Windows(1000), []
    # On 5 s, off 5 s: a raise every 10 s.
    for i in range(60):
        value = 150.0 if (i // 5) % 2 == 0 else 50.0
        windows.append([good("oven.temp", T0 + i, value)])
        events += det.step(windows, T0 + i)
    raised = [e for e in events if e.state is AlertState.RAISED]
    # Three episodes, then the fourth raise is flagged and the alert held open.
    assert len(raised) == 4
    assert [e.extra.get("chattering", False) for e in raised] == [False, False, False, True]
    assert "chattering" in raised[3].reason and events[-1] is raised[3]
    assert rule.tracker.is_open
    # It clears once the value stayed normal for chatter_hold (1 min), not before.
    quiet = []
    for i in range(60, 140):
        windows.append([good("oven.temp", T0 + i, 50.0)])
        quiet += det.step(windows, T0 + i)
    assert [e.state for e in quiet] == [AlertState.CLEARED]
    assert quiet[0].window_end - (T0 + 35) >= 60


def test_shelve_suppresses_new_raises_and_expires_on_time() -> None:
    _, det = chattering_rule(100)
    windows, events = Windows(1000), []

    def at(i: int, value: float) -> list[Alert]:
        windows.append([good("oven.temp", T0 + i, value)])
        return det.step(windows, T0 + i)

    events = at(0, 150.0)
    assert [e.state for e in events] == [AlertState.RAISED]
    shelved, _ = det.apply(Request(1, T0 + 1, "shelve", events[0].id, until=T0 + 31), T0 + 1)
    assert shelved is not None and shelved.extra["shelved_until"] == T0 + 31
    later = at(2, 50.0) + at(3, 150.0) + at(10, 150.0)  # cleared; the next raise is held back
    assert [e.state for e in later] == [AlertState.CLEARED]
    assert at(30, 150.0) == []
    expired = at(31, 150.0)  # shelve over: the condition still holds, so it raises now
    assert [e.state for e in expired] == [AlertState.RAISED]
    assert "shelved_until" not in expired[0].extra


def test_shelve_is_capped_and_unshelve_is_an_event() -> None:
    _, det = chattering_rule(100)
    windows = Windows(100)
    windows.append([good("oven.temp", T0, 150.0)])
    (raised,) = det.step(windows, T0)
    week = T0 + 7 * 86400
    shelved, _ = det.apply(Request(1, T0, "shelve", raised.id, until=week), T0)
    assert shelved is not None and shelved.extra["shelved_until"] == T0 + 8 * 3600
    back, _ = det.apply(Request(2, T0 + 5, "unshelve", raised.id, by="bo"), T0 + 5)
    assert back is not None and back.state is AlertState.UNSHELVED
    assert back.reason == "unshelved by bo" and "shelved_until" not in back.extra
    ids = [event_id(a) for a in (raised, shelved, back)]
    assert ids == [f"{raised.id}:raised", f"{raised.id}:shelved:1", f"{raised.id}:unshelved:2"]
    missing, result = det.apply(Request(3, T0, "ack", "ffff"), T0)
    assert missing is None and result.startswith("refused")


async def test_cli_requests_reach_the_running_loop_and_upstream(tmp_path: Path) -> None:
    _, det = chattering_rule(100)
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "agent.yaml"
    # The CLI reads only agent.data_dir and outbox.path: a missing secret does not stop it.
    config.write_text("agent: {data_dir: data}\nsinks:\n  - {type: mqtt, password: '${NOPE}'}\n")
    worker, windows = Worker(), Windows(100)
    try:
        outbox = await worker.run(Outbox.open, data / "outbox.db", OutboxConfig(), ["up"])
        loop = DetectorLoop(det, windows, outbox, worker, "gw", 1.0, lambda: None)
        loop.requests = data / "outbox.db"
        windows.append([good("oven.temp", T0, 150.0)])
        await loop.step(T0)
        (raised,) = await worker.run(outbox.open_alerts)
        argv = ["alerts", "ack", raised.id[:8], "-c", str(config), "--by", "ana", "--wait", "0"]
        assert await asyncio.to_thread(cli_main, argv) == 0
        assert await asyncio.to_thread(cli_main, ["alerts", "ack", "0000", "-c", str(config)]) == 1
        await loop.step(T0 + 1)
        (acked,) = await worker.run(outbox.open_alerts)
        history = await worker.run(outbox.alert_history)
        await worker.run(outbox.close)
    finally:
        worker.close()
    assert acked.id == raised.id and acked.extra["acknowledged"]["by"] == "ana"
    assert [a.state for a in history] == [AlertState.ACKNOWLEDGED, AlertState.RAISED]
    assert loop.updated == 1
    body = decode(
        b'{"v":1,' + b'"event_id":"' + event_id(history[0]).encode() + b'"}'
    )  # the key a consumer dedupes on
    assert body["event_id"] == f"{raised.id}:acknowledged:1"


def test_a_sustained_steady_state_is_rebaselined_automatically(tmp_path: Path) -> None:
    det = model_detector(tmp_path, rebaseline={"auto": "on", "after": "10s", "steady": 0.5})
    windows = Windows(1000)
    # 20 s normal, then a step to a new steady level that the model calls abnormal.
    alerts = feed(det, windows, [0.0] * 20 + [1.5] * 40, T0)
    assert [a.state for a in alerts] == [AlertState.RAISED, AlertState.CLEARED]
    raised, cleared = alerts
    assert cleared.extra["rebaselined"] is True and "new normal" in cleared.reason
    assert cleared.window_end - raised.window_end >= 10
    assert det.assets["pump"].slot.card.mean == (1.5, 1.5, 1.5)
    # A moving (unsteady) state is never taken as the new normal.
    det2, windows2 = (
        model_detector(tmp_path, rebaseline={"auto": "on", "after": "10s"}),
        Windows(1000),
    )
    ramp = [0.0] * 20 + [1.5 + 0.2 * i for i in range(40)]
    assert [a.state for a in feed(det2, windows2, ramp, T0)][-1] is not AlertState.CLEARED


def test_after_a_rebaseline_the_old_normal_is_still_normal(tmp_path: Path) -> None:
    det = model_detector(tmp_path, rebaseline={"auto": "on", "after": "10s", "steady": 0.5})
    windows = Windows(1000)
    first = feed(det, windows, [0.0] * 20 + [1.5] * 30, T0)
    assert [a.state for a in first] == [AlertState.RAISED, AlertState.CLEARED]
    # The machine goes back to its old state: no alarm, and the old card is back.
    assert feed(det, windows, [0.0] * 20, T0 + 50) == []
    assert det.assets["pump"].slot.card.mean == (0.0, 0.0, 0.0)


async def test_updates_survive_a_restart_and_keep_counting(tmp_path: Path) -> None:
    _, det = chattering_rule(100)
    worker, windows = Worker(), Windows(100)
    try:
        outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        windows.append([good("oven.temp", T0, 150.0)])
        (raised,) = det.step(windows, T0)
        ack, _ = det.apply(Request(1, T0, "ack", raised.id, by="ana"), T0 + 1)
        assert ack is not None
        await worker.run(outbox.put_alerts, [raised, ack], "gw")
        stored = await worker.run(outbox.open_alerts)
        # A new agent: the open alert comes back acknowledged, its updates numbered on.
        _, fresh = chattering_rule(100)
        assert fresh.restore(stored, T0 + 2) == []
        shelved, _ = fresh.apply(Request(2, T0 + 2, "shelve", raised.id, until=T0 + 60), T0 + 2)
        windows.append([good("oven.temp", T0 + 3, 50.0)])
        (cleared,) = fresh.step(windows, T0 + 3)
        await worker.run(outbox.put_alerts, [shelved, cleared], "gw")
        left = await worker.run(outbox.open_alerts)
        await worker.run(outbox.close)
    finally:
        worker.close()
    assert stored[0].extra["acknowledged"]["by"] == "ana"
    assert shelved is not None and shelved.extra["update"] == 2
    assert cleared.id == raised.id and cleared.state is AlertState.CLEARED and left == []


def test_a_run_state_on_a_signal_no_source_produces_is_a_config_error(tmp_path: Path) -> None:
    from edge_agent.config import parse_config
    from edge_agent.errors import ConfigError

    text = (
        "sources:\n"
        "  - {type: modbus, name: plc, url: 'tcp://127.0.0.1:5020',\n"
        "     registers: [{name: temp, address: 0}, {name: current, address: 1}]}\n"
        "detect:\n"
        "  rules:\n"
        "    - {name: hot, type: threshold, signal: plc.temp, above: 5,\n"
        "       run_state: plc.curent > 2}\n"
    )
    try:
        parse_config(text, tmp_path / "agent.yaml")
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError("accepted a run_state on an unknown signal")
    assert "agent.yaml:7: detect.rules[0].run_state: no source produces 'plc.curent'" in message
    assert "did you mean plc.current?" in message
    parse_config(text.replace("curent", "current"), tmp_path / "agent.yaml")
