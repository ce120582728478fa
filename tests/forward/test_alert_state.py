"""Open-alert state lives in the outbox file, written in the same transaction as the events."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_agent.errors import StorageError
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.encode import decode
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import adopt_legacy_open_alerts
from edge_agent.types import AlertState
from tests.forward.factory import make_alert, make_summary


def _open(tmp_path: Path, sinks: tuple[str, ...] = ("a", "b")) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig(), sinks)


def test_a_stored_raise_is_open_and_its_clear_closes_it(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    raised = make_alert(1)
    outbox.put_alerts([raised, make_alert(2)], "gw1")
    assert [a.id for a in outbox.open_alerts()] == [raised.id, make_alert(2).id]
    outbox.put_alerts([make_alert(1, state=AlertState.CLEARED)], "gw1")
    assert [a.cause for a in outbox.open_alerts()] == ["rule2"]
    history = outbox.alert_history()
    assert [(a.cause, a.state) for a in history] == [
        ("rule1", AlertState.CLEARED),
        ("rule2", AlertState.RAISED),
        ("rule1", AlertState.RAISED),
    ]


def test_the_state_survives_closing_without_any_save(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw1")
    outbox._db.close()  # as a SIGKILL would: no close(), no save step
    assert [a.id for a in _open(tmp_path).open_alerts()] == [make_alert(1).id]


def test_a_failed_put_changes_neither_the_events_nor_the_state(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    with sqlite3.connect(tmp_path / "outbox.db") as other:
        other.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON rows WHEN NEW.sink = 'b'"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    with pytest.raises(StorageError):
        outbox.put_alerts([make_alert(1)], "gw1")
    assert outbox.open_alerts() == []
    assert outbox.take("a", 10) == []


def test_the_state_is_kept_with_no_sink_configured(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=())
    outbox.put_alerts([make_alert(1)], "gw1")
    assert [a.cause for a in outbox.open_alerts()] == ["rule1"]


def test_seq_is_consecutive_per_sink(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    for i in range(3):
        outbox.put_alerts([make_alert(i)], "gw1")
    for sink in ("a", "b"):
        assert [decode(r.body)["seq"] for r in outbox.take(sink, 10)] == [1, 2, 3]


def test_seq_is_consecutive_within_a_batch_and_across_classes(tmp_path: Path) -> None:
    """A put of several rows (a detector step's alerts, a telemetry window) numbers each."""
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["a"])
    outbox.put_alerts([make_alert(i) for i in range(3)], "gw1")
    outbox.put_telemetry([make_summary(i, 1_700_000_060.0 + 60 * i) for i in range(4)], "gw1",
                         ["a"])  # fmt: skip
    outbox.put_alerts([make_alert(3), make_alert(4)], "gw1")
    rows = outbox.take("a", 100)
    outbox.close()
    # Alerts go first (priority), so the order on the wire is not the seq order: sort it.
    assert sorted(decode(r.body)["seq"] for r in rows) == list(range(1, 10))


def test_seq_goes_on_after_a_restart_and_after_acks(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",))
    outbox.put_alerts([make_alert(0), make_alert(1)], "gw1")
    outbox.ack("a", outbox.take("a", 10))
    outbox.close()
    again = _open(tmp_path, sinks=("a",))
    again.put_alerts([make_alert(2)], "gw1")
    assert [decode(r.body)["seq"] for r in again.take("a", 10)] == [3]


def test_a_file_from_before_seq_keeps_its_rows_in_order(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "outbox.db")
    db.executescript(
        "CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL,"
        " cls INTEGER NOT NULL, state TEXT NOT NULL, gateway TEXT NOT NULL,"
        " asset TEXT NOT NULL, ts REAL NOT NULL, created REAL NOT NULL,"
        " size INTEGER NOT NULL, body BLOB NOT NULL);"
    )
    old_row = (7, "a", 0, "raised", "gw1", "p", 1, 1, 10, b'{"v":1}')
    db.execute("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", old_row)
    db.commit()
    db.close()
    outbox = _open(tmp_path, sinks=("a",))
    outbox.put_alerts([make_alert(1)], "gw1")
    assert [decode(r.body)["seq"] for r in outbox.take("a", 10)] == [7, 8]


def test_a_legacy_open_alerts_file_is_adopted_once_and_removed(tmp_path: Path) -> None:
    legacy = tmp_path / "open-alerts.json"
    legacy.write_text(json.dumps([make_alert(1).to_dict()]))
    outbox = _open(tmp_path)
    assert adopt_legacy_open_alerts(legacy, outbox) == 1
    assert not legacy.exists()
    assert [a.cause for a in outbox.open_alerts()] == ["rule1"]
    assert outbox.take("a", 10) == []  # no event is sent again for it


def test_a_stale_legacy_file_is_ignored_when_the_outbox_knows_better(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    outbox.put_alerts([make_alert(1), make_alert(1, state=AlertState.CLEARED)], "gw1")
    legacy = tmp_path / "open-alerts.json"
    legacy.write_text(json.dumps([make_alert(1).to_dict()]))  # left by an old clean stop
    assert adopt_legacy_open_alerts(legacy, outbox) == 0
    assert outbox.open_alerts() == []
    legacy.write_text("{not json")
    assert adopt_legacy_open_alerts(legacy, outbox) == 0
    assert not legacy.exists()


def test_replay_of_events_not_stored_yet_agrees_with_storing_them(tmp_path: Path) -> None:
    """What a reload hands the new detector (stored open set + held events) is what the
    outbox holds once the held events are stored, wherever the outbox stopped taking them."""
    from dataclasses import replace

    from edge_agent.forward.alert_state import replay
    from edge_agent.types import alert_id

    one, two = make_alert(1), make_alert(2)
    again = replace(two, id=alert_id("press1", "rule2", 1_800_000_000.0), window_end=1.8e9)
    events = [
        one, two,
        replace(one, state=AlertState.ACKNOWLEDGED, reason="acknowledged by ana"),
        replace(two, state=AlertState.CLEARED),
        again,
        replace(two, state=AlertState.CLEARED),  # a stale clear: not the open episode
        replace(one, state=AlertState.CLEARED),
        make_alert(3),
    ]  # fmt: skip

    def seen(alerts: list[Any]) -> list[tuple[str, str, str]]:
        return [(a.id, a.cause, a.reason) for a in alerts]

    for stored in range(len(events) + 1):
        for held in range(stored, len(events) + 1):
            outbox = Outbox.open(tmp_path / f"{stored}-{held}.db", OutboxConfig(), ["a"])
            outbox.put_alerts(events[:stored], "gw1")
            handed = replay(outbox.open_alerts(), events[stored:held])
            outbox.put_alerts(events[stored:held], "gw1")
            assert seen(handed) == seen(outbox.open_alerts()), (stored, held)
            outbox.close()
