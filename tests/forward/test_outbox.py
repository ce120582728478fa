"""The outbox alone: order, transaction, bounds and drop policy, notices, durability."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from edge_agent.errors import StorageError
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.encode import decode
from edge_agent.forward.outbox import Outbox
from edge_agent.types import AlertState
from tests.forward.factory import make_alert, make_summary


def _open(tmp_path: Path, sinks: tuple[str, ...] = ("a", "b"), **config: object) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig.model_validate(config), sinks)


def _causes(records: list) -> list[str]:  # type: ignore[type-arg]
    return [decode(r.body).get("cause", decode(r.body)["type"]) for r in records]


def test_one_row_per_sink_oldest_first(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    outbox.put_alerts([make_alert(i) for i in range(3)], "gw1")
    for sink in ("a", "b"):
        batch = outbox.take(sink, 10)
        assert _causes(batch) == ["rule0", "rule1", "rule2"]
        assert {decode(r.body)["gateway"] for r in batch} == {"gw1"}
    assert outbox.status().rows("a") == 3


def test_ack_deletes_keep_retakes_reject_counts(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    outbox.put_alerts([make_alert(i) for i in range(4)], "gw1")
    first = outbox.take("a", 2)
    outbox.keep("a", first)
    assert _causes(outbox.take("a", 2)) == ["rule0", "rule1"]
    outbox.ack("a", first)
    second = outbox.take("a", 1)
    assert _causes(second) == ["rule2"]
    outbox.reject("a", second)
    assert _causes(outbox.take("a", 10)) == ["rule3"]
    status = outbox.status()
    assert status.counters["a"]["rejected"] == 1
    assert status.rows("b") == 4


def test_alerts_overtake_telemetry(tmp_path: Path) -> None:
    outbox = _open(tmp_path)
    outbox.put_telemetry([make_summary(i, time.time()) for i in range(5)], "gw1", ["a"])
    outbox.put_alerts([make_alert(7)], "gw1")
    kinds = [r.kind for r in outbox.take("a", 3)]
    assert kinds == ["alert", "telemetry", "telemetry"]
    assert [r.kind for r in outbox.take("b", 10)] == ["alert"]


def test_seq_increases_and_event_id_is_stable(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",))
    alert = make_alert(1)
    outbox.put_alerts([alert, make_alert(2)], "gw1")
    payloads = [decode(r.body) for r in outbox.take("a", 10)]
    assert payloads[0]["seq"] < payloads[1]["seq"]
    assert payloads[0]["event_id"] == f"{alert.id}:raised"
    assert payloads[0]["v"] == 1


def test_late_telemetry_is_marked_historical(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), historical_after="1m")
    now = time.time()
    outbox.put_telemetry([make_summary(1, now - 3600), make_summary(2, now)], "gw1", ["a"])
    payloads = [decode(r.body) for r in outbox.take("a", 10, now=now)]
    assert [p.get("historical", False) for p in payloads] == [True, False]
    assert payloads[0]["end"] < payloads[1]["end"]


def test_bound_drops_telemetry_before_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=5)
    now = time.time()
    outbox.put_telemetry([make_summary(i, now + i) for i in range(4)], "gw1", ["a"])
    with caplog.at_level(logging.ERROR):
        outbox.put_alerts([make_alert(i) for i in range(3)], "gw1")
    batch = outbox.take("a", 10)
    assert batch[0].kind == "notice"
    assert decode(batch[0].body)["dropped"] == {"alert": 0, "telemetry": 2}
    assert [r.kind for r in batch[1:]] == ["alert"] * 3 + ["telemetry"] * 2
    assert [decode(r.body)["min"] for r in batch[4:]] == [2.0, 3.0]  # oldest went first
    assert "dropped 2 telemetry" in caplog.text


def test_alerts_alone_over_bound_drop_oldest_cleared_first(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=4)
    outbox.put_alerts(
        [
            make_alert(0),
            make_alert(1, state=AlertState.CLEARED),
            make_alert(2),
            make_alert(3, state=AlertState.CLEARED),
        ],
        "gw1",
    )
    outbox.put_alerts([make_alert(4)], "gw1")
    batch = outbox.take("a", 10)
    assert _causes(batch)[1:] == ["rule0", "rule2", "rule3", "rule4"]
    outbox.keep("a", batch)
    outbox.put_alerts([make_alert(5), make_alert(6)], "gw1")
    # the last cleared alert goes, then the oldest raised one
    assert _causes(outbox.take("a", 10))[1:] == ["rule2", "rule4", "rule5", "rule6"]
    assert outbox.status().counters["a"]["dropped_alert"] == 3


def test_byte_bound(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_size="2KB")
    outbox.put_alerts([make_alert(i) for i in range(20)], "gw1")
    status = outbox.status()
    assert 0 < status.backlog[0].bytes <= 2000
    kept = _causes(outbox.take("a", 100))[1:]
    assert kept[-1] == "rule19"
    assert len(kept) == status.rows("a") < 20


def test_notice_announced_once_after_ack(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=1)
    outbox.put_alerts([make_alert(0), make_alert(1)], "gw1")
    batch = outbox.take("a", 10)
    assert [r.kind for r in batch] == ["notice", "alert"]
    outbox.keep("a", batch)
    again = outbox.take("a", 10)
    assert again[0].kind == "notice"  # not delivered yet: still pending
    outbox.ack("a", again)
    assert outbox.take("a", 10) == []
    outbox.put_alerts([make_alert(2), make_alert(3)], "gw1")
    notice = outbox.take("a", 10)[0]
    assert decode(notice.body)["dropped"]["alert"] == 2  # running total


def test_rows_in_flight_are_not_dropped(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=2)
    outbox.put_alerts([make_alert(0), make_alert(1)], "gw1")
    inflight = outbox.take("a", 1)
    outbox.put_alerts([make_alert(2)], "gw1")
    outbox.ack("a", inflight)
    assert _causes(outbox.take("a", 10))[1:] == ["rule2"]


def test_rows_and_counters_survive_reopen(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=2)
    outbox.put_alerts([make_alert(i) for i in range(3)], "gw1")
    outbox.close()
    again = _open(tmp_path, sinks=("a",), max_rows=2)
    batch = again.take("a", 10)
    assert _causes(batch) == ["notice", "rule1", "rule2"]
    again.keep("a", batch)
    again.put_alerts([make_alert(9)], "gw1")  # bookkeeping reloaded: still bounded
    assert again.status().rows("a") == 2


def test_take_skips_rows_in_flight_and_keep_returns_them_all(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",), max_rows=3)
    outbox.put_alerts([make_alert(i) for i in range(3)], "gw1")
    outbox.put_alerts([make_alert(3)], "gw1")  # over the bound: a notice goes first
    first = outbox.take("a", 2)
    second = outbox.take("a", 2)
    assert _causes(first) == ["notice", "rule1", "rule2"]  # rule0 was dropped
    assert _causes(second) == ["rule3"]  # no second notice while the first is in flight
    outbox.keep("a", second)  # a failure: everything in flight goes back, in order
    assert _causes(outbox.take("a", 10)) == ["notice", "rule1", "rule2", "rule3"]


def test_pipelined_acks(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a",))
    outbox.put_alerts([make_alert(i) for i in range(5)], "gw1")
    first, second = outbox.take("a", 2), outbox.take("a", 2)
    outbox.ack("a", first)
    third = outbox.take("a", 2)
    outbox.ack("a", second)
    outbox.ack("a", third)
    assert [_causes(b) for b in (first, second, third)] == [
        ["rule0", "rule1"],
        ["rule2", "rule3"],
        ["rule4"],
    ]
    assert outbox.status().rows("a") == 0


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    outbox = _open(tmp_path, sinks=("a", "b"), max_rows=2)
    outbox.put_alerts([make_alert(0)], "gw1")
    # A real SQLite failure in the middle of the transaction (as a full disk would be):
    # sink a's rows are written, then sink b's fail.
    with sqlite3.connect(tmp_path / "outbox.db") as other:
        other.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON rows WHEN NEW.sink = 'b' AND NEW.asset = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    with pytest.raises(StorageError, match="disk says no"):
        outbox.put_alerts([make_alert(1), make_alert(9, asset="boom")], "gw1")
    outbox.put_alerts([make_alert(2)], "gw1")  # fits: the failed put left no trace
    assert _causes(outbox.take("a", 10)) == ["rule0", "rule2"]
    assert "a" not in outbox.status().counters  # nothing was counted as dropped


def test_prognoses_go_to_every_sink_behind_alerts_and_are_dropped_like_telemetry(
    tmp_path: Path,
) -> None:
    from edge_agent.forward.encode import encode_prognosis

    outbox = _open(tmp_path, max_rows=3)
    body = encode_prognosis({"asset": "engine", "ts": 1.0, "rul": 12.0, "low": None}, "gw1")
    outbox.put_prognoses([("engine", time.time(), body)], "gw1")
    outbox.put_alerts([make_alert(7)], "gw1")
    for sink in ("a", "b"):
        batch = outbox.take(sink, 10)
        assert [r.kind for r in batch] == ["alert", "prognosis"]
        payload = decode(batch[1].body)
        assert payload["type"] == "prognosis" and payload["rul"] == 12.0
        assert payload["low"] is None and batch[1].asset == "engine"
    outbox = _open(tmp_path / "bound", max_rows=2)
    outbox.put_prognoses([("engine", time.time(), body)], "gw1")
    outbox.put_alerts([make_alert(1), make_alert(2)], "gw1")  # over the bound: the prognosis goes
    assert [r.kind for r in outbox.take("a", 10) if r.kind != "notice"] == ["alert", "alert"]
