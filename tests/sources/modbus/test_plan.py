"""The request planner: fewest requests under gap, size and fence limits; intervals."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.modbus.health import UnitHealth
from edge_agent.sources.modbus.plan import Fences, Limits, Point, Request, halves, plan, tight
from edge_agent.sources.poll import Schedule


def points_at(
    addresses: Sequence[int], width: int = 1, table: str = "holding", unit: int = 1
) -> list[Point]:
    return [Point(i, unit, table, a, width) for i, a in enumerate(addresses)]  # type: ignore[arg-type]


def valid_block(block: Sequence[Point], size: int, gap: int) -> bool:
    """Independent check: sorted points, every hole <= gap, span <= size."""
    span = max(p.end for p in block) - block[0].address
    reach = block[0].end
    for point in block[1:]:
        if point.address - reach > gap:
            return False
        reach = max(reach, point.end)
    return span <= size


def minimum_requests(points: Sequence[Point], size: int, gap: int) -> int:
    """Exact minimum by dynamic programming over runs of the sorted points."""
    ordered = sorted(points, key=lambda p: (p.address, p.width))
    best = [0] + [len(ordered) + 1] * len(ordered)
    for end in range(1, len(ordered) + 1):
        for start in range(end):
            if valid_block(ordered[start:end], size, gap):
                best[end] = min(best[end], best[start] + 1)
    return best[-1]


def check_covers(requests: list[Request], points: Sequence[Point], limits: Limits) -> None:
    served = sorted(p.key for r in requests for p in r.points)
    assert served == sorted(p.key for p in points)
    for request in requests:
        size, _ = limits.size_and_gap(request.table)
        assert request.count <= size
        for point in request.points:
            assert request.start <= point.address and point.end <= request.start + request.count
            assert (point.unit, point.table) == (request.unit, request.table)


scattered = st.lists(
    st.tuples(st.integers(0, 400), st.sampled_from([1, 2, 4])), min_size=1, max_size=40
)


@given(scattered, st.integers(0, 30), st.integers(4, 125))
def test_request_count_is_the_minimum(spots: list[tuple[int, int]], gap: int, size: int) -> None:
    points = [Point(i, 1, "holding", a, w) for i, (a, w) in enumerate(spots)]
    limits = Limits(max_registers=size, register_gap=gap)
    requests = plan(points, limits)
    check_covers(requests, points, limits)
    assert len(requests) == minimum_requests(points, size, gap)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=60), st.integers(0, 200))
def test_bits_use_the_bit_limits(addresses: list[int], gap: int) -> None:
    points = points_at(addresses, table="coil")
    limits = Limits(max_bits=2000, bit_gap=gap)
    requests = plan(points, limits)
    check_covers(requests, points, limits)
    assert len(requests) == minimum_requests(points, 2000, gap)


def test_tables_and_units_never_share_a_request() -> None:
    points = [
        Point(0, 1, "holding", 0, 1),
        Point(1, 1, "input", 1, 1),
        Point(2, 2, "holding", 1, 1),
        Point(3, 1, "holding", 2, 1),
    ]
    requests = plan(points, Limits())
    assert sorted((r.unit, r.table, r.start, r.count) for r in requests) == [
        (1, "holding", 0, 3),
        (1, "input", 1, 1),
        (2, "holding", 1, 1),
    ]


def test_protocol_limits_split_long_runs() -> None:
    assert [r.count for r in plan(points_at(range(300)), Limits())] == [125, 125, 50]
    assert [r.count for r in plan(points_at(range(4100), table="discrete"), Limits())] == [
        2000, 2000, 100
    ]  # fmt: skip


def test_a_fence_stops_hole_filling_across_it() -> None:
    points = points_at([0, 5, 20])
    fences = Fences()
    assert len(plan(points, Limits(register_gap=20), fences)) == 1
    fences.add(1, "holding", 2, 4)
    requests = plan(points, Limits(register_gap=20), fences)
    assert [(r.start, r.count) for r in requests] == [(0, 1), (5, 16)]


def test_halves_split_between_points() -> None:
    request = tight(points_at([0, 3, 9, 12]))
    left, right = halves(request)
    assert (left.start, left.count, right.start, right.count) == (0, 4, 9, 4)


def test_schedule_reads_base_interval_every_tick_and_slow_groups_when_due() -> None:
    schedule = Schedule([1.0, 5.0, 5.0, 2.0], tick=1.0)
    jitter = [0.0, 0.02, 0.001, 0.3, 0.0, 0.05, 0.2, 0.0, 0.01, 0.0, 0.4]
    due = {t: schedule.due(t + j) for t, j in enumerate(jitter)}
    assert [t for t, d in due.items() if 1.0 in d] == list(range(11))
    assert [t for t, d in due.items() if 2.0 in d] == [0, 2, 4, 6, 8, 10]
    assert [t for t, d in due.items() if 5.0 in d] == [0, 5, 10]


def test_schedule_catches_up_after_skipped_ticks_without_bursts() -> None:
    schedule = Schedule([1.0, 5.0], tick=1.0)
    assert 5.0 in schedule.due(0.0)
    assert 5.0 in schedule.due(17.0)  # the loop was stalled
    assert [t for t in range(18, 30) if 5.0 in schedule.due(float(t))] == [22, 27]


def test_a_cut_stops_joining_adjacent_signals() -> None:
    fences = Fences()
    fences.add(1, "holding", 50, 50)  # the device refused 0..99 but answers 0..49 and 50..99
    requests = plan(points_at(range(100)), Limits(), fences)
    assert [(r.start, r.count) for r in requests] == [(0, 50), (50, 50)]


def test_unit_health_backs_off_each_unit_alone() -> None:
    health = UnitHealth("bus", [1, 2], first=1.0, most=8.0)
    health.reset()
    delays = [health.failed(2, now=0.0, reason="timeout") for _ in range(6)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling from 1 s, capped at 8 s
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert health.available(1, 0.0) and not health.available(2, 0.0)
    assert not health.all_down()
    health.failed(1, now=0.0, reason="timeout")
    assert health.all_down()
    health.answered(2, now=30.0)
    assert health.available(2, 30.0) and not health.all_down()
