"""One vocabulary on the command line: renamed flags name their new name, durations read alike."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_agent.cli.flags import duration
from edge_agent.cli.main import build_parser, main

PROBE = ["probe", "tcp://127.0.0.1:1", "--holding", "0"]
OLD_FLAGS = [
    ([*PROBE, "--baudrate", "9600"], "--baudrate", "--baud"),
    ([*PROBE, "--bytesize", "7"], "--bytesize", "--data-bits"),
    ([*PROBE, "--stopbits", "2"], "--stopbits", "--stop-bits"),
    ([*PROBE, "--unit", "2"], "--unit", "--device-id"),
    (["sim", "--csv", "x.csv"], "--csv", "--out"),
    (["replay", "-c", "a.yaml", "--asset", "p", "--csv", "h.csv", "--out", "o"], "--csv", "--data"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "old", "new"), OLD_FLAGS)
def test_an_old_flag_exits_2_with_one_line_naming_the_new_one(
    argv: list[str], old: str, new: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"edge-agent {argv[0]}: {old} is now {new} (see CHANGELOG.md)\n"


@pytest.mark.parametrize("command", ["probe", "sim", "replay"])
def test_old_flags_are_not_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert not {"--baudrate", "--bytesize", "--stopbits", "--unit", "--csv"} & set(out.split())


def test_check_config_takes_config_and_the_old_positional(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c like every command; the positional form stays for unit files already installed."""
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: gw\n")
    assert main(["check-config", "--config", str(config)]) == 0
    assert main(["check-config", str(config)]) == 0
    with pytest.raises(SystemExit):
        main(["check-config", "--help"])
    assert "positional arguments" not in capsys.readouterr().out  # the old form is unlisted
    for argv in (["check-config"], ["check-config", str(config), "-c", str(config)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "give the config file as --config/-c PATH" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("75", 75.0), ("75s", 75.0), ("2m", 120.0), ("0.5", 0.5), ("500ms", 0.5)]
)
def test_a_duration_flag_takes_units_and_bare_seconds(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["nan", "inf", "-5", "2x", "99999d"])
def test_a_duration_flag_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_demo_and_sim_read_duration_alike() -> None:
    parser = build_parser()
    demo = parser.parse_args(["demo", "--duration", "2m"])
    sim = parser.parse_args(["sim", "--duration", "2m"])
    assert demo.duration == sim.duration == 120.0
