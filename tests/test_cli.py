"""The command line as an integrator meets it: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edge_agent.cli.main import main
from edge_agent.errors import EX_CONFIG


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_typo_exits_78_with_path_and_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: gw\ntwin:\n  max_sampels: 10\n")
    result = _run("check-config", str(config))
    assert result.returncode == EX_CONFIG
    assert f"{config}:4: twin.max_sampels: unknown key (did you mean max_samples?)" in result.stderr


def test_check_config_missing_file_exits_78(tmp_path: Path) -> None:
    result = _run("check-config", str(tmp_path / "missing.yaml"))
    assert result.returncode == EX_CONFIG
    assert "missing.yaml: cannot read config" in result.stderr


def test_run_with_missing_env_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: ${EDGE_AGENT_TEST_NOT_SET}\n")
    result = _run("run", "--config", str(config))
    assert result.returncode == EX_CONFIG
    assert "EDGE_AGENT_TEST_NOT_SET is not set" in result.stderr


def test_check_config_ok(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: gw\n")
    assert main(["check-config", str(config)]) == 0


def test_help_lists_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("run", "check-config", "read-once", "demo"):
        assert command in result.stdout
