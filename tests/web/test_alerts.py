"""The alert views the API and the CLI read (the outbox's alert state), and episode records."""

from __future__ import annotations

from pathlib import Path

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.types import Alert, AlertKind, AlertState, Severity, alert_id
from edge_agent.web.alerts import OutboxAlerts, StoredAlerts, episodes, listing


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
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cloud"])
    outbox.put_alerts([raised], "gw1")
    view = StoredAlerts(tmp_path / "outbox.db")  # what the CLI reads beside the agent
    (only,) = await listing(view, everything=False)
    assert only["id"] == raised.id and only["state"] == "open"
    (episode,) = await listing(view, everything=True)
    assert episode["state"] == "open" and episode["raised_at"] == 1000.0
    outbox.put_alerts([event("hot", AlertState.CLEARED, 1060.0, raised=1000.0)], "gw1")
    assert await listing(view, everything=False) == []
    (episode,) = await listing(view, everything=True)
    assert (episode["state"], episode["cleared_at"]) == ("cleared", 1060.0)


async def test_the_agent_view_reads_its_own_outbox(tmp_path: Path) -> None:
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), [])
    events = [event(f"c{i}", AlertState.RAISED, 1000.0 + i) for i in range(5)]
    outbox.put_alerts(events, "gw1")

    async def run(fn, *args):  # type: ignore[no-untyped-def]
        return fn(*args)

    view = OutboxAlerts(outbox, run, limit=3)
    assert [a.cause for a in await view.history()] == ["c2", "c3", "c4"]  # oldest first
    assert len(await view.open()) == 5


async def test_no_files_no_alerts(tmp_path: Path) -> None:
    view = StoredAlerts(tmp_path / "outbox.db")
    assert await listing(view, everything=False) == []
    assert await listing(view, everything=True) == []
