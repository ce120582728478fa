"""The pump skid's signal model: deterministic, correlated, faults where scheduled."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edge_agent.sim.physics import (
    PROBE_LINE_REGEX,
    SIGNAL_NAMES,
    PumpSkid,
    probe_line,
    read_csv,
    simulate,
    write_csv,
)
from edge_agent.sim.scenario import DEMO, Fault, Scenario, get_scenario


@pytest.fixture(scope="module")
def normal() -> dict[str, np.ndarray]:
    return simulate(1800.0, 1.0, seed=7)


@pytest.fixture(scope="module")
def demo() -> dict[str, np.ndarray]:
    return simulate(DEMO.duration_s, 0.5, seed=3, scenario="demo")


def _window(series: dict[str, np.ndarray], name: str, lo: float, hi: float) -> np.ndarray:
    t = series["t"]
    return series[name][(t >= lo) & (t < hi)]


def test_same_seed_same_series_other_seed_differs() -> None:
    a = simulate(120.0, 1.0, seed=11, scenario="demo")
    b = simulate(120.0, 1.0, seed=11, scenario="demo")
    c = simulate(120.0, 1.0, seed=12, scenario="demo")
    assert set(a) == {"t", *SIGNAL_NAMES}
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["motor_current"], c["motor_current"])


def test_signals_are_noisy_and_follow_the_load_cycle(normal: dict[str, np.ndarray]) -> None:
    for name in SIGNAL_NAMES:
        assert np.all(np.isfinite(normal[name])), name
        assert np.count_nonzero(np.diff(normal[name])) > 0.9 * normal[name].size, name
    corr = np.corrcoef([normal[n] for n in ("flow", "motor_current", "discharge_pressure")])
    assert corr.min() > 0.9
    # The load swings flow by far more than its noise: a real cycle, not jitter.
    assert np.ptp(normal["flow"]) > 30.0
    assert np.corrcoef(normal["vibration_rms"], normal["motor_current"])[0, 1] > 0.7
    assert np.corrcoef(normal["tank_level"], normal["flow"])[0, 1] < -0.5


def test_bearing_temperature_lags_motor_current(normal: dict[str, np.ndarray]) -> None:
    cur = normal["motor_current"] - normal["motor_current"].mean()
    temp = normal["bearing_temp"] - normal["bearing_temp"].mean()
    lags = range(0, 120)
    corr = [np.corrcoef(cur[: cur.size - k], temp[k:])[0, 1] for k in lags]
    assert int(np.argmax(corr)) > 20


def test_bearing_wear_raises_vibration_and_temperature(demo: dict[str, np.ndarray]) -> None:
    for name, rise in (("vibration_rms", 2.0), ("bearing_temp", 8.0), ("probe_rms", 0.5)):
        before = _window(demo, name, 0.0, 20.0)
        during = _window(demo, name, 30.0, 39.0)
        after = _window(demo, name, 41.0, 43.0)
        assert during.mean() > before.mean() + rise, name
        assert abs(after.mean() - before.mean()) < rise / 2, name


def test_cavitation_shakes_pressure_and_drops_flow(demo: dict[str, np.ndarray]) -> None:
    before = _window(demo, "discharge_pressure", 0.0, 20.0)
    during = _window(demo, "discharge_pressure", 47.0, 53.0)
    assert during.std() > 4 * before.std()
    flow_before = _window(demo, "flow", 0.0, 20.0).mean()
    assert _window(demo, "flow", 47.0, 53.0).mean() < 0.9 * flow_before


def test_stuck_sensor_freezes_then_moves_again(demo: dict[str, np.ndarray]) -> None:
    stuck = _window(demo, "tank_level", 25.5, 50.0)
    assert stuck.size > 40 and np.ptp(stuck) == 0.0
    assert np.ptp(_window(demo, "tank_level", 0.0, 25.0)) > 0.0
    assert np.ptp(_window(demo, "tank_level", 50.5, 60.0)) > 0.0


def test_stuck_at_a_given_value() -> None:
    scenario = Scenario("x", (Fault("stuck", 10.0, 20.0, signal="motor_current", value=0.0),), 30)
    series = simulate(30.0, 1.0, seed=1, scenario=scenario)
    assert np.all(_window(series, "motor_current", 11.0, 20.0) == 0.0)
    assert np.all(_window(series, "motor_current", 21.0, 30.0) > 5.0)


def test_labels_mark_the_scheduled_windows() -> None:
    t = np.arange(0.0, 70.0, 1.0)
    labels = DEMO.labels(t)
    assert t[labels["bearing_wear"]].tolist() == list(np.arange(21.0, 40.0))
    assert labels["cavitation"].sum() == 9 and labels["stuck"].sum() == 24


def test_time_must_not_go_backwards() -> None:
    skid = PumpSkid(seed=1)
    skid.at(5.0)
    with pytest.raises(ValueError, match="backwards"):
        skid.at(4.0)


def test_bad_fault_and_unknown_scenario_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="after start"):
        Fault("cavitation", 10.0, 5.0)
    with pytest.raises(ValueError, match="needs the signal"):
        Fault("stuck", 1.0, 5.0)
    with pytest.raises(ValueError, match="known: commissioning, demo, normal"):
        get_scenario("nope")


def test_probe_line_parses_with_the_documented_regex(demo: dict[str, np.ndarray]) -> None:
    values = {name: float(demo[name][70]) for name in SIGNAL_NAMES}
    line = probe_line(values)
    match = re.match(PROBE_LINE_REGEX, line)
    assert match is not None, line
    assert float(match["rms"]) == pytest.approx(values["probe_rms"], abs=0.005)
    assert float(match["temp"]) == pytest.approx(values["probe_temp"], abs=0.05)


def test_csv_round_trip(tmp_path: Path) -> None:
    series = simulate(30.0, 0.5, seed=2, scenario="demo")
    path = tmp_path / "skid.csv"
    write_csv(path, series)
    back = read_csv(path)
    assert list(back) == list(series)
    for name in series:
        np.testing.assert_allclose(back[name], series[name], rtol=1e-5, atol=1e-9)


def test_stuck_on_an_unknown_signal_is_refused() -> None:
    scenario = Scenario("x", (Fault("stuck", 1.0, 2.0, signal="nope"),), 5.0)
    with pytest.raises(ValueError, match="unknown signal 'nope'"):
        PumpSkid(seed=0, scenario=scenario)


def test_link_faults_leave_the_physics_alone() -> None:
    links = Scenario("links", (Fault("modbus_offline", 5, 20), Fault("probe_garbage", 5, 20)), 30)
    with_links = simulate(30.0, 1.0, seed=4, scenario=links)
    plain = simulate(30.0, 1.0, seed=4)
    for name in SIGNAL_NAMES:
        np.testing.assert_array_equal(with_links[name], plain[name])
    assert links.on("modbus_offline", 10.0) and not links.on("modbus_offline", 25.0)
