"""The config read straight from the parser's events is the config read the full way.

``load_yaml`` reads most files from the events (:mod:`edge_agent.config_events`) and
hands anything unusual to ``read_nodes``: whatever the file, both must give the same
data, the same line for every YAML path (in the same order), or the same error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config_errors import YamlPath
from edge_agent.config_events import read_events
from edge_agent.config_yaml import (
    MAX_DEPTH,
    MAX_VALUES,
    _check_printable,
    _decode,
    _Loader,
    _Problem,
    load_yaml,
    read_nodes,
)
from edge_agent.errors import ConfigError
from tests.test_config_fuzz import _FUZZ, DEMO, DUMPER, SEED, _mutation, _trees

ROOT = Path(__file__).resolve().parent.parent
PATH = Path("agent.yaml")
FILES = [ROOT / "config.example.yaml", ROOT / "edge_agent" / "sim" / "demo.yaml",
         *sorted((ROOT / "examples").glob("*.yaml"))]  # fmt: skip


def _events(text: str) -> tuple[Any, dict[YamlPath, int]] | None:
    escapes = "\\" in text
    return read_events(_Loader(text), max_depth=MAX_DEPTH, max_values=MAX_VALUES, escapes=escapes)


def _outcome(read: object, text: str) -> str:
    """What a reader gives: its data and lines, or its error, as text (types, order)."""
    try:
        return repr(read(text, PATH))  # type: ignore[operator]
    except ConfigError as exc:
        return f"ConfigError: {exc}"


def _plant(registers: int) -> dict[str, object]:
    """A config the size of a big plant: one Modbus source, ``registers`` float32 tags."""
    rows = [{"name": f"t{i}", "address": 2 * i, "data_type": "float32"} for i in range(registers)]
    source = {"type": "modbus", "name": "pump1", "url": "tcp://127.0.0.1:502",
              "interval": "100ms", "registers": rows}  # fmt: skip
    return {"agent": {"id": "gw", "data_dir": "/tmp/x"}, "sources": [source]}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_configs_are_read_from_the_events_as_the_full_way_reads_them(path: Path) -> None:
    text = path.read_text()
    assert _events(text) is not None
    assert _outcome(load_yaml, text) == _outcome(read_nodes, text)


@pytest.mark.parametrize("flow", [False, True], ids=["block", "json"])
def test_a_big_plant_is_read_from_the_events(flow: bool) -> None:
    plant = _plant(3000)
    text = json.dumps(plant, indent=1) if flow else yaml.safe_dump(plant, sort_keys=False)
    read = _events(text)
    assert read is not None
    data, lines = read
    assert data == plant
    assert lines[("sources", 0, "registers", 2999, "address")] == lines[
        ("sources", 0, "registers", 2999)
    ] + (2 if flow else 1)
    assert (data, lines) == read_nodes(text, PATH)


UNUSUAL = [
    "a: &x {b: 1}\nc: *x\n",  # anchor and alias
    "base: &b {k: 1}\nm:\n  <<: *b\n  j: 2\n",  # merge key
    "a: !!str 5\n",  # a core tag
    "a: !!python/object:os.system x\n",  # a refused tag
    "a: 1\na: 2\n",  # a key given twice
    "a: <<\n",  # '<<' as a value is text
    "'<<': 1\n",  # a quoted '<<' key
    "? [a, b]\n: 1\n",  # a list as a key
    "a: '\\0'\nb: \"\\0\"\n",  # an escaped NUL
    'a: "\\ud800"\n',  # an escaped surrogate
    '"\\0": 1\n',  # a key with an escaped NUL
    "a: 99999999999999999999\n",  # past 64 bits
    "a: -9223372036854775809\nb: 9223372036854775807\n",
    "a: 0o9\n",
    "a: 010\nb: 0x1F\nc: 1_000\nd: 190:20:30\ne: 0\n",  # YAML 1.1 integers
    "a: 1e3\nb: .inf\nc: 1.5\nd: yes\ne: on\nf: ~\ng: null\nh: 2024-02-30\n",
    "a: [" * 60 + "]" * 60 + "\n",  # deeper than the bound
    "a: [" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n",  # at the bound
    "a: [" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n",  # one past it
    "a: 1\n---\nb: 2\n",  # two documents
    "",  # nothing
    "---\n",  # an empty document
    "# only a comment\n",
    "a: [1, 2\n",  # a parse error
    "a: |\n  text\n  ${X}\nb: >\n  folded\n  line\n",
    "1: one\ntrue: yes\nnull: x\n",  # keys are their text
]


@pytest.mark.parametrize("text", UNUSUAL)
def test_unusual_files_give_what_the_full_way_gives(text: str) -> None:
    assert _outcome(load_yaml, text) == _outcome(read_nodes, text)


def test_the_count_of_values_is_bounded_as_in_the_full_way() -> None:
    most = "a: [" + ", ".join(["1"] * (MAX_VALUES - 3)) + "]\n"  # the root, a, the list, items
    assert _events(most) is not None
    over = most.replace("[", "[1, ")
    assert _events(over) is None  # the full way says so (test_config_yaml.py)
    assert "more than 200,000 values" in _outcome(load_yaml, over)


def _same_either_way(data: bytes) -> None:
    try:
        text = _decode(data, PATH)
        _check_printable(text)
    except (ConfigError, _Problem):
        return  # refused before either reader runs
    direct = _events(text)
    full = _outcome(read_nodes, text)
    if direct is not None:
        assert repr(direct) == full
    assert _outcome(load_yaml, text) == full


@settings(_FUZZ, max_examples=600)
@given(data=_mutation(SEED))
def test_mutated_example_reads_the_same_either_way(data: bytes) -> None:
    _same_either_way(data)


@settings(_FUZZ, max_examples=600)
@given(data=_mutation(DEMO))
def test_mutated_demo_reads_the_same_either_way(data: bytes) -> None:
    _same_either_way(data)


@settings(_FUZZ, max_examples=600)
@given(tree=_trees(), flow=st.booleans())
def test_generated_structures_read_the_same_either_way(tree: object, flow: bool) -> None:
    text = yaml.dump(tree, Dumper=DUMPER, default_flow_style=flow, allow_unicode=True)
    _same_either_way(text.encode("utf-8", "surrogatepass"))
