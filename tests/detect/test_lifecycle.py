"""The alert state machine: debounce, hysteresis, streaks, ids."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_agent.detect.lifecycle import Evidence, Gate, Level, Tracker
from edge_agent.types import AlertKind, AlertState, alert_id

EVIDENCE = Evidence(1.0, 1.0, ("a.x",), "why", 0.0)


def tracker(raise_gate: Gate, clear_gate: Gate) -> Tracker:
    return Tracker("press", "cause", AlertKind.MODEL, raise_gate, clear_gate)


@settings(max_examples=200, deadline=None)
@given(
    levels=st.lists(st.sampled_from(list(Level)), max_size=120),
    k=st.integers(1, 4),
    extra=st.integers(0, 3),
)
def test_events_alternate_and_respect_k_of_n(levels: list[Level], k: int, extra: int) -> None:
    n = k + extra
    t = tracker(Gate(k, n), Gate(k, n))
    known: list[Level] = []
    last_state = AlertState.CLEARED
    raised_id = ""
    for i, level in enumerate(levels):
        event = t.update(float(i), level, EVIDENCE)
        if level is not Level.UNKNOWN:
            known.append(level)
        if event is None:
            continue
        assert event.state != last_state  # raise, clear, raise, ...
        want = Level.ABOVE if event.state is AlertState.RAISED else Level.BELOW
        assert known[-n:].count(want) >= k
        if event.state is AlertState.RAISED:
            raised_id = event.id
            assert event.id == alert_id("press", "cause", float(i))
        else:
            assert event.id == raised_id
        last_state = event.state
        known.clear()  # a transition starts the other gate afresh
    assert t.is_open == (last_state is AlertState.RAISED)


def test_hold_needs_an_unbroken_streak() -> None:
    t = tracker(Gate(1, 1, hold=3.0), Gate())
    assert t.update(0.0, Level.ABOVE, EVIDENCE) is None
    assert t.update(2.0, Level.UNKNOWN, None) is None  # a gap restarts the streak
    assert t.update(3.0, Level.ABOVE, EVIDENCE) is None
    assert t.update(5.0, Level.ABOVE, EVIDENCE) is None
    event = t.update(6.0, Level.ABOVE, EVIDENCE)
    assert event is not None and event.state is AlertState.RAISED and event.window_end == 6.0


def test_band_neither_raises_nor_clears() -> None:
    t = tracker(Gate(), Gate())
    assert t.update(0.0, Level.ABOVE, EVIDENCE) is not None
    for i in range(1, 50):
        assert t.update(float(i), Level.BAND, EVIDENCE) is None
    cleared = t.update(50.0, Level.BELOW, EVIDENCE)
    assert cleared is not None and cleared.state is AlertState.CLEARED


@settings(max_examples=300, deadline=None)
@example([Level.ABOVE, Level.BELOW, Level.BELOW, Level.ABOVE], 2, 1, 0.0)
@given(
    actions=st.lists(st.sampled_from([*Level, *Level, "ack", "shelve", "unshelve", "stop"])),
    k=st.integers(1, 3),
    extra=st.integers(0, 2),
    hold=st.sampled_from([0.0, 2.0]),
)
def test_a_settled_tracker_ignores_what_is_not_above(
    actions: list[Level | str], k: int, extra: int, hold: float
) -> None:
    """Skipping the update of a settled tracker when the level is not ABOVE (as the rule
    batch and the asset do) changes no event and no later decision."""
    gate = Gate(k, k + extra, hold)
    always, skipping = tracker(gate, Gate(k, k + extra)), tracker(gate, Gate(k, k + extra))
    skipped = 0
    for i, action in enumerate(actions):
        now = float(i)
        if isinstance(action, Level):
            evidence = None if action is Level.UNKNOWN else EVIDENCE
            expected = always.update(now, action, evidence)
            if action is not Level.ABOVE and skipping.settled():
                skipped += 1
                assert expected is None
                continue
            assert skipping.update(now, action, evidence) == expected
        elif action == "ack":
            assert skipping.acknowledge(now, "op") == always.acknowledge(now, "op")
        elif action == "shelve":
            assert skipping.shelve(now, now + 5, "op") == always.shelve(now, now + 5, "op")
        elif action == "unshelve":
            assert skipping.unshelve(now, "op") == always.unshelve(now, "op")
        else:
            assert skipping.stop(now, "stopped") == always.stop(now, "stopped")
    assert skipping.open == always.open
