"""The config parsed in a forked child is the config parsed here, errors included."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config_fork import load_config_forked
from edge_agent.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def test_the_forked_load_equals_the_direct_one() -> None:
    direct, forked = load_config(EXAMPLE), load_config_forked(EXAMPLE)
    assert forked.model_dump() == direct.model_dump()
    assert forked.where(("sources", 0, "name")) == direct.where(("sources", 0, "name"))
    assert forked.data_path("twin.db") == direct.data_path("twin.db")


def test_a_config_error_is_raised_as_by_load_config(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("agent:\n  id: gw1\n  data_dirr: /tmp\n")
    with pytest.raises(ConfigError) as direct:
        load_config(bad)
    with pytest.raises(ConfigError) as forked:
        load_config_forked(bad)
    assert str(forked.value) == str(direct.value)
    assert "data_dirr" in str(forked.value)
