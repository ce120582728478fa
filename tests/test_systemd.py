"""The unit file verifies cleanly (systemd-analyze prints only warnings, so any output fails)."""

from __future__ import annotations

import re
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
    assert "ExecStartPre=/opt/edge-agent/venv/bin/edge-agent check-config -c" in text
    # `systemctl reload` sends HUP to the agent itself, which reloads (tests/test_reload.py).
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_exposure_is_at_most_2(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_hardening_keeps_network_serial_and_the_trust_folder() -> None:
    settings = _settings()
    families = " ".join(settings["RestrictAddressFamilies"]).split()
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(families)  # devices, upstream, notify
    assert "PrivateNetwork" not in settings and "IPAddressDeny" not in settings
    assert settings.get("PrivateDevices", ["no"]) == ["no"]  # it would hide /dev/ttyUSB*
    allowed = {entry.split()[0] for entry in settings["DeviceAllow"] if entry.endswith("rw")}
    assert {"char-ttyUSB", "char-ttyACM", "char-ttyS", "char-ttyAMA"} <= allowed
    assert settings["SupplementaryGroups"] == ["dialout"]
    assert "PrivateUsers" not in settings  # would unmap group dialout
    assert settings["ProtectSystem"] == ["strict"] and settings["StateDirectory"] == ["edge-agent"]
    assert "-/etc/edge-agent/pki" in settings["ReadWritePaths"]  # trust: first_use writes here
    assert settings["UMask"] == ["0027"]
    assert set(settings["RestartPreventExitStatus"][0].split()) == {"78", "73"}
