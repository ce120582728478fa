"""The ``twin:`` config section: defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.errors import ConfigError


def test_defaults_and_units() -> None:
    twin = parse_config(
        "twin:\n  max_size: 200MB\n  rollup_max_age: 4w\n".replace("4w", "28d"), Path("a.yaml")
    ).twin
    assert (twin.max_samples, twin.sync, twin.stale_factor) == (10_000, "full", 3.0)
    assert twin.max_size == 200_000_000 and twin.rollup_max_age == 28 * 86400.0
    assert twin.rollup_slots() == 28 * 1440 + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  max_age: 0s", "twin.max_age: Input should be greater than 0"),
        ("  max_size: 1KB", "twin.max_size: Input should be greater than or equal to 65536"),
        ("  rollup_max_age: 10s", "twin.rollup_max_age: Input should be greater than or equal"),
        ("  sync: off", "twin.sync: Input should be 'normal', 'full' or 'extra'"),
        ("  max_samples: 0", "twin.max_samples: Input should be greater than or equal to 1"),
        ("  stale_facto: 2", "twin.stale_facto: unknown key (did you mean stale_factor?)"),
    ],
)
def test_bad_values_name_the_key_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"agent:\n  id: gw1\ntwin:\n{text}\n", Path("a.yaml"))
    assert str(caught.value).startswith(f"a.yaml:4: {message}")
