"""The unit file verifies cleanly (systemd-analyze prints only warnings, so any output fails)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "edge-agent.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    # ExecStart must name an existing binary: point it at this interpreter's console script.
    binary = Path(sys.executable).parent / "edge-agent"
    if not binary.exists():
        pytest.skip("edge-agent console script not installed in this environment")
    text = UNIT.read_text().replace("/opt/edge-agent/venv/bin/edge-agent", str(binary))
    unit = tmp_path / "edge-agent.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True
    )
    lines = [line for line in result.stderr.splitlines() if "edge-agent.service" in line]
    assert result.returncode == 0 and not lines, result.stderr


def test_unit_does_not_restart_on_config_errors() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "RestartPreventExitStatus=78" in text
    assert "ExecStartPre=/opt/edge-agent/venv/bin/edge-agent check-config" in text
