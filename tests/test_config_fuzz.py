"""Hostile configs: whatever the file holds, check-config exits 0 or 78, never a traceback.

Property tests (hypothesis) feed ``edge-agent check-config`` in-process (:func:`main`,
the command's own entry point, exit-code mapping included) with mutations of
``config.example.yaml`` and the demo config, and with YAML built from the schema's key
names: 10,000 configs per run in all (:data:`EXAMPLES`). A few subprocess runs check the
real exit code and that stderr holds no traceback. An input found failing here is kept
as a golden case in ``tests/cases/config/`` with its expected message.

Select them with ``pytest -m fuzz``; they run in the default suite too.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.cli.main import build_parser, main, run_command
from edge_agent.errors import EX_CONFIG

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
SEED = "\n".join(line for line in EXAMPLE.splitlines() if not line.lstrip().startswith("##"))
"""The example without its prose: a third of the text, the same YAML."""
DEMO = (ROOT / "edge_agent" / "sim" / "demo.yaml").read_text(encoding="utf-8")
DEMO_MODEL = ROOT / "edge_agent" / "sim" / "demo_pump.onnx"
KEYS = sorted(set(re.findall(r"^[#\s-]*([a-z_]+):", EXAMPLE, re.MULTILINE)))
"""Every key the example names, commented or not: the fuzzer's vocabulary."""

EXAMPLES = {"example": 3_500, "demo": 4_000, "structure": 2_500}
"""Configs per property: 10,000 per run."""

NASTY = [
    "2024-02-30",
    "2001-12-14t21:59:43.10-05:00",
    "!!int abc",
    "!!float x",
    "!!bool maybe",
    "!!python/object/apply:os.system [ls]",
    "!!binary ===",
    "!!timestamp x",
    "!!set {a}",
    "!!omap [1]",
    "!local x",
    "*undefined",
    "&a [*a]",
    "{<<: *a}",
    "<<",
    "=",
    "~",
    "null",
    "[",
    "{",
    "]",
    "'",
    '"',
    "? [a, b]",
    "? {a: 1}",
    "9" * 30,
    "9" * 5000,
    "1e999",
    ".nan",
    "-.inf",
    "0x_",
    "0o9",
    "1_000",
    "190:20:30",
    "99999999999999999999d",
    "1e30s",
    "-5s",
    "0ms",
    "9" * 400 + "GB",
    "0B",
    "yes",
    "off",
    "on",
    '"on"',
    "",
    "\t",
    "é",
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    '"\\ud800"',
    '"\\0"',
    "${NOT_SET_FUZZ}",
    "${",
    "- a",
    "a: b: c",
    "|",
    ">-",
    "%YAML 1.1",
    "---",
    "...",
    "@x",
    "`x",
    "!",
    "!!",
    "&",
    "*",
]

_FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


PARSER = build_parser()
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _check(path: Path, data: bytes) -> int:
    """Write ``data`` and run check-config on it in-process; the exit code.

    The command line is parsed once (:func:`main` builds the parser at each call,
    a third of the time); :func:`run_command` is what :func:`main` runs after that.
    """
    path.write_bytes(data)
    code = run_command(PARSER.parse_args(["check-config", "-c", str(path)]))
    assert code in (0, EX_CONFIG), f"exit {code} for {data[:300]!r}"
    return code


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder like the repository's: ``models/`` beside the config; the demo's variables."""
    (tmp_path / "models").symlink_to(ROOT / "models")
    monkeypatch.setenv("DEMO_MODEL", str(DEMO_MODEL))
    monkeypatch.setenv("DEMO_DIR", str(tmp_path))
    monkeypatch.delenv("NOT_SET_FUZZ", raising=False)
    logging.disable(logging.INFO)  # "model loaded" 10,000 times would cost a third of the time
    yield tmp_path
    logging.disable(logging.NOTSET)


@st.composite
def _mutation(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with one to four lines changed: a nasty value, a key, a cut, a bad byte."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, len(lines) - 1))
        lines = _edit(draw, lines, n) or [""]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if data and draw(st.integers(0, 19)) == 0:  # a flipped byte, as on a failing SD card
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


# The strategies an edit draws from, built once: a strategy built at each draw is
# validated and labelled at each draw, which took most of the fuzzer's time.
_VALUES = st.sampled_from(NASTY) | st.text(max_size=12)
_NEW_KEYS = st.sampled_from([*KEYS, "<<", "x-a", "? [a]"])
_INDENTS = st.sampled_from(["  ", " ", "\t"])
_TAILS = st.text(max_size=20)
_EDITS = st.sampled_from(
    ["value", "key", "drop", "double", "indent", "dedent", "uncomment", "cut", "garble"]
)


def _edit(draw: st.DrawFn, lines: list[str], n: int) -> list[str]:
    """``lines`` with line ``n`` edited one way of nine, drawn with ``draw``."""
    line = lines[n]
    indent = line[: len(line) - len(line.lstrip())]
    edits: dict[str, Callable[[], list[str]]] = {
        "value": lambda: _set(lines, n, _valued(line, draw(_VALUES))),
        "key": lambda: _set(
            lines, n, f"{indent}{draw(_NEW_KEYS)}: {line.partition(':')[2].strip()}"
        ),
        "drop": lambda: lines[:n] + lines[n + 1 :],
        "double": lambda: [*lines[: n + 1], line, *lines[n + 1 :]],
        "indent": lambda: _set(lines, n, draw(_INDENTS) + line),
        "dedent": lambda: _set(lines, n, line[2:] if line.startswith("  ") else line),
        "uncomment": lambda: _set(lines, n, line.replace("# ", "", 1)),  # a documented key
        "cut": lambda: lines[:n],
        "garble": lambda: _set(lines, n, line[: len(line) // 2] + draw(_TAILS)),
    }
    return edits[draw(_EDITS)]()


def _valued(line: str, value: str) -> str:
    """``line`` with ``value`` for its value (after it, on a line without ``: ``)."""
    head, sep, _ = line.partition(": ")
    return f"{head}: {value}" if sep else f"{line} {value}"


def _set(lines: list[str], n: int, line: str) -> list[str]:
    return [*lines[:n], line, *lines[n + 1 :]]


def _scalars() -> st.SearchStrategy[object]:
    durations = st.builds(
        "{}{}".format, st.integers(0, 10**12), st.sampled_from(["ms", "s", "m", "h", "d"])
    )
    sizes = st.builds(
        "{}{}".format, st.integers(0, 10**15), st.sampled_from(["B", "KB", "MB", "GB", "GiB"])
    )
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from([*KEYS, "modbus", "opcua", "serial", "mqtt", "http", "jsonl"]),
        durations,
        sizes,
    )


def _trees() -> st.SearchStrategy[object]:
    """Schema-shaped YAML: known section and key names, any nesting, any scalars."""
    keys = st.sampled_from(KEYS) | st.text(max_size=8)
    nested = st.recursive(
        _scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=12,
    )
    sections = st.sampled_from(["agent", "sources", "twin", "detect", "outbox", "sinks", "metrics"])
    return st.dictionaries(sections, nested, max_size=5)


@settings(_FUZZ, max_examples=EXAMPLES["example"])
@given(data=_mutation(SEED))
def test_mutated_example_exits_0_or_78(workdir: Path, data: bytes) -> None:
    _check(workdir / "agent.yaml", data)


@settings(_FUZZ, max_examples=EXAMPLES["demo"])
@given(data=_mutation(DEMO))
def test_mutated_demo_config_exits_0_or_78(workdir: Path, data: bytes) -> None:
    _check(workdir / "demo.yaml", data)


@settings(_FUZZ, max_examples=EXAMPLES["structure"])
@given(tree=_trees(), flow=st.booleans(), anchors=st.booleans())
def test_generated_structures_exit_0_or_78(
    workdir: Path, tree: object, flow: bool, anchors: bool
) -> None:
    text = yaml.dump(tree, Dumper=DUMPER, default_flow_style=flow, allow_unicode=True)
    if anchors:  # the dumper writes shared values once; make some aliases and merges
        text = "x-base: &base {id: gw, interval: 1s}\n" + text.replace("{}", "{<<: *base}")
    _check(workdir / "gen.yaml", text.encode("utf-8", "surrogatepass"))


def test_example_itself_is_ok(workdir: Path) -> None:
    """The fuzzer's seed passes: the properties above see valid configs too."""
    assert _check(workdir / "agent.yaml", EXAMPLE.encode()) == 0
    assert _check(workdir / "agent.yaml", SEED.encode()) == 0
    assert _check(workdir / "demo.yaml", DEMO.encode()) == 0
    assert main(["check-config", "-c", str(workdir / "demo.yaml")]) == 0


LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
HOSTILE = {
    "not_utf8": b"agent:\n  id: gw\xff\n",
    "billion_laughs": LAUGHS.encode(),
    "deep": b"agent: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "recursive_alias": b"agent: &a\n  id: *a\n",
    "python_tag": b"agent:\n  id: !!python/object/apply:os.system [echo hi]\n",
    "duplicate_key": b"agent:\n  id: a\nsources: []\nagent:\n  id: b\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_exits_78_without_traceback(tmp_path: Path, name: str) -> None:
    """As systemd runs it: a real process, exit 78 (not restarted), a file:line sentence."""
    path = tmp_path / "agent.yaml"
    path.write_bytes(HOSTILE[name])
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(rf"{re.escape(str(path))}:\d+: ", result.stderr), result.stderr
    print(f"{name}: {time.monotonic() - started:.2f} s")
