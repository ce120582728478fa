#!/usr/bin/env bash
# Install edge-agent as a systemd service on Debian / Raspberry Pi OS (run as root from a clone).
#   ./deploy/install.sh            install or upgrade; keeps an existing /etc/edge-agent/config.yaml
# Layout: code in /opt/edge-agent/venv, config in /etc/edge-agent, data in /var/lib/edge-agent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
apt-get install -y -qq python3-venv >/dev/null
id edge-agent >/dev/null 2>&1 || useradd --system --home /var/lib/edge-agent --shell /usr/sbin/nologin edge-agent
usermod -a -G dialout edge-agent
install -d -m 0755 /opt/edge-agent
[ -x /opt/edge-agent/venv/bin/python ] || python3 -m venv /opt/edge-agent/venv
/opt/edge-agent/venv/bin/pip install -q --upgrade .
install -m 0644 README.md /opt/edge-agent/README.md
install -d -m 0750 -o root -g edge-agent /etc/edge-agent
if [ ! -f /etc/edge-agent/config.yaml ]; then
  install -m 0640 -o root -g edge-agent config.example.yaml /etc/edge-agent/config.yaml
  echo "install.sh: wrote /etc/edge-agent/config.yaml from config.example.yaml: edit it"
fi
install -d -m 0750 -o edge-agent -g edge-agent /var/lib/edge-agent
# OPC UA certificates: the unit lets the service write here (trust: first_use, rejected/).
# Keys inside: root:edge-agent 0640; the agent refuses secret files open to other users.
install -d -m 0750 -o edge-agent -g edge-agent /etc/edge-agent/pki
install -m 0644 systemd/edge-agent.service /etc/systemd/system/edge-agent.service
/opt/edge-agent/venv/bin/edge-agent check-config -c /etc/edge-agent/config.yaml || \
  echo "install.sh: fix the config, then: systemctl enable --now edge-agent" >&2
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install.sh: done. Start with: systemctl enable --now edge-agent"
fi
