"""The alert files the agent keeps for the API and the CLI, and the episode records."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.types import Alert, AlertKind, AlertState, Severity, alert_id
from edge_agent.web.alerts import (
    HISTORY_FILE,
    StoredAlerts,
    append_history,
    episodes,
    listing,
    read_history,
)


def event(cause: str, state: AlertState, at: float, raised: float | None = None) -> Alert:
    raised_at = at if raised is None else raised
    return Alert(
        id=alert_id("pump1", cause, raised_at),
        asset="pump1",
        kind=AlertKind.RULE,
        cause=cause,
        severity=Severity.WARNING,
        state=state,
        signals=("pump1.flow",),
        score=1.0,
        threshold=0.5,
        window_start=at - 10,
        window_end=at,
        reason=f"{cause} {state}",
    )


def test_history_file_is_cut_back_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    events = [event(f"c{i}", AlertState.RAISED, 1000.0 + i) for i in range(25)]
    for one in events:
        append_history(path, [one], limit=10)
    lines = path.read_text().splitlines()
    assert 10 <= len(lines) < 20
    assert read_history(path, 10) == events[-10:]


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    good = event("a", AlertState.RAISED, 1000.0)
    append_history(path, [good], limit=10)
    with path.open("a") as file:
        file.write('{"id": "x", "asse')
    assert read_history(path, 10) == [good]


def test_episodes_join_raise_and_clear_newest_first() -> None:
    raised = event("hot", AlertState.RAISED, 1000.0)
    cleared = event("hot", AlertState.CLEARED, 1060.0, raised=1000.0)
    other = event("silent", AlertState.RAISED, 1100.0)
    records = episodes([raised, cleared, other], open_ids={other.id})
    assert [(r["cause"], r["state"]) for r in records] == [("silent", "open"), ("hot", "cleared")]
    hot = records[1]
    assert (hot["raised_at"], hot["cleared_at"]) == (1000.0, 1060.0)
    assert records[0]["cleared_at"] is None


async def test_stored_view_lists_open_and_all(tmp_path: Path) -> None:
    raised = event("hot", AlertState.RAISED, 1000.0)
    append_history(tmp_path / HISTORY_FILE, [raised], limit=10)
    (tmp_path / "open-alerts.json").write_text(json.dumps([raised.to_dict()]))
    view = StoredAlerts(tmp_path)
    (only,) = await listing(view, everything=False)
    assert only["id"] == raised.id and only["state"] == "open"
    (episode,) = await listing(view, everything=True)
    assert episode["state"] == "open" and episode["raised_at"] == 1000.0


async def test_no_files_no_alerts(tmp_path: Path) -> None:
    view = StoredAlerts(tmp_path)
    assert await listing(view, everything=False) == []
    assert await listing(view, everything=True) == []
