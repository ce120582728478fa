"""The agent's own Prometheus text writer, read back by prometheus_client's parser.

prometheus_client is a test dependency only: its parser
(``text_string_to_metric_families``) is the independent reader of what
:mod:`edge_agent.exposition` writes, and its process and platform collectors the
reference :mod:`edge_agent.process_metrics` must agree with.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.exposition import counter, format_value, gauge, render, summary
from edge_agent.process_metrics import max_fds, process_families

Parsed = dict[str, tuple[str, str, list[tuple[str, dict[str, str], float]]]]
"""Family name -> (type, help, [(sample name, labels, value)])."""


def parse(text: bytes) -> Parsed:
    return {
        f.name: (f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text.decode())
    }


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_each_kind_reads_back() -> None:
    reads = counter("app_reads", "Reads.", ["source", "kind"])
    reads.add(["pump1", "ok"], 3.0)
    level = gauge("app_level", "Tank level.")
    level.add([], -1.5)
    reply = summary("app_reply_seconds", "Reply time.", ["unit"])
    reply.add_summary(["1"], 4.0, 0.25)
    empty = counter("app_never", "Nothing yet.", ["source"])
    parsed = parse(render([reads, level, reply, empty]))
    assert parsed == {
        "app_reads": ("counter", "Reads.", [
            ("app_reads_total", {"source": "pump1", "kind": "ok"}, 3.0),
        ]),
        "app_level": ("gauge", "Tank level.", [("app_level", {}, -1.5)]),
        "app_reply_seconds": ("summary", "Reply time.", [
            ("app_reply_seconds_count", {"unit": "1"}, 4.0),
            ("app_reply_seconds_sum", {"unit": "1"}, 0.25),
        ]),
        "app_never": ("counter", "Nothing yet.", []),
    }  # fmt: skip


def test_the_text_is_as_prometheus_client_wrote_it() -> None:
    # Byte for byte what the agent served before (labels sorted, counters with _total).
    labels = ["sink", "class"]
    family = counter("edge_agent_outbox_dropped", "Rows dropped to keep the bound.", labels)
    family.add(["up", "alert"], 0.0)
    assert render([family]).decode() == (
        "# HELP edge_agent_outbox_dropped_total Rows dropped to keep the bound.\n"
        "# TYPE edge_agent_outbox_dropped_total counter\n"
        'edge_agent_outbox_dropped_total{class="alert",sink="up"} 0.0\n'
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [(math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (1.0, "1.0"), (1e-7, "1e-07"),
     (1796644220.1202927, "1796644220.1202927"), (-0.0, "-0.0"), (2**53, "9007199254740992.0")],
)  # fmt: skip
def test_values(value: float, text: str) -> None:
    assert format_value(value) == text


def test_escapes() -> None:
    family = gauge("app_info", 'Say "hi"\\ then\nstop.', ["path"])
    family.add(['C:\\dir\n"x"'], 1.0)
    text = render([family]).decode()
    assert '# HELP app_info Say "hi"\\\\ then\\nstop.\n' in text
    assert 'app_info{path="C:\\\\dir\\n\\"x\\""} 1.0\n' in text
    assert parse(text.encode())["app_info"] == (
        "gauge",
        'Say "hi"\\ then\nstop.',
        [("app_info", {"path": 'C:\\dir\n"x"'}, 1.0)],
    )


@given(
    values=st.lists(st.tuples(st.text(), st.text()), max_size=5, unique=True),
    number=st.floats(),
    doc=st.text().map(str.strip),
)
def test_any_label_value_and_number_read_back(
    values: list[tuple[str, str]], number: float, doc: str
) -> None:
    family = gauge("app_any", doc, ["a", "b"])
    for pair in values:
        family.add(pair, number)
    kind, help_text, samples = parse(render([family]))["app_any"]
    assert (kind, help_text) == ("gauge", doc)
    assert [(s[1]["a"], s[1]["b"]) for s in samples] == values
    assert all(same(s[2], number) for s in samples)


def test_one_family_per_name() -> None:
    with pytest.raises(ValueError, match="two families named app_x_total"):
        render([counter("app_x", "One."), counter("app_x", "Two.")])
    with pytest.raises(ValueError, match="two families named app_x"):
        render([counter("app_x", "Counter."), gauge("app_x_total", "A gauge in its way.")])
    with pytest.raises(ValueError, match="two families named app_y_sum"):
        render([summary("app_y", "Summary."), gauge("app_y_sum", "A gauge in its way.")])


@pytest.mark.parametrize(
    ("name", "labels", "message"),
    [("2app", (), "not a metric name"), ("app-x", (), "not a metric name"),
     ("app_x", ("__name",), "not a label name"), ("app_x", ("le-x",), "not a label name"),
     ("app_x_total", (), "without _total")],
)  # fmt: skip
def test_bad_names_refused(name: str, labels: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        counter(name, "Doc.", labels)


def test_label_values_must_match_the_names() -> None:
    family = gauge("app_x", "Doc.", ["a", "b"])
    with pytest.raises(ValueError, match="1 label values"):
        family.add(["only one"], 1.0)
    with pytest.raises(ValueError, match="use add_summary"):
        summary("app_s", "Doc.").add([], 1.0)
    with pytest.raises(ValueError, match="not a summary"):
        family.add_summary(["a", "b"], 1.0, 1.0)


def _reference() -> Parsed:
    from prometheus_client import generate_latest

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return parse(generate_latest(registry))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_process_series_agree_with_prometheus_client() -> None:
    reference = _reference()
    ours = parse(render(process_families()))
    assert {n: (k, d) for n, (k, d, _) in ours.items()} == {
        n: (k, d) for n, (k, d, _) in reference.items()
    }
    for name, (_, _, samples) in ours.items():
        (sample_name, labels, value), *more = samples
        (ref_name, ref_labels, ref_value), *_ = reference[name][2]
        assert (sample_name, labels, more) == (ref_name, ref_labels, [])
        if name in ("process_start_time_seconds", "process_max_fds", "python_info"):
            assert value == ref_value, name
        else:  # read a moment apart: CPU, memory and open files move a little
            assert value == pytest.approx(ref_value, rel=0.05, abs=2.0), name


def test_what_cannot_be_read_is_left_out(tmp_path: Path) -> None:
    assert [f.name for f in process_families(tmp_path)] == ["python_info"]


def test_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "self" / "fd").mkdir(parents=True)
    (tmp_path / "self" / "fd" / "0").touch()
    rest = "S 1 2 3 4 5 6 7 8 9 10 250 150 13 14 15 16 17 18 500 4096 30 " + "0 " * 20
    (tmp_path / "self" / "stat").write_text(f"42 (a) b (c) {rest}\n")
    (tmp_path / "self" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            1024                 524288               files\n"
    )
    (tmp_path / "stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n")
    got = {f.name: f.samples[0].value for f in process_families(tmp_path)}
    ticks = os.sysconf("SC_CLK_TCK")
    assert got == {
        "process_virtual_memory_bytes": 4096.0,
        "process_resident_memory_bytes": 30.0 * os.sysconf("SC_PAGE_SIZE"),
        "process_start_time_seconds": 1700000000 + 500 / ticks,
        "process_cpu_seconds": 400 / ticks,
        "process_open_fds": 1.0,
        "process_max_fds": 1024.0,
        "python_info": 1.0,
    }
    assert max_fds(tmp_path / "none") is None
