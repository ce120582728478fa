#!/usr/bin/env bash
# Remove edge-agent installed by deploy/install.sh (run as root).
#   ./deploy/uninstall.sh           stops and removes the service, the code and the command;
#                                   keeps the config (/etc/edge-agent), the data
#                                   (/var/lib/edge-agent) and the user, for a later install
#   ./deploy/uninstall.sh --purge   also removes the config, the data and the user
set -euo pipefail
purge=no
case "${1:-}" in
  "") ;;
  --purge) purge=yes ;;
  *) echo "uninstall.sh: unknown argument $1 (--purge or nothing)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }
if [ -d /run/systemd/system ]; then
  systemctl disable --now edge-agent 2>/dev/null || true
fi
rm -f /etc/systemd/system/edge-agent.service
[ ! -d /run/systemd/system ] || systemctl daemon-reload
# Only our link: a different edge-agent on PATH is someone else's.
if [ "$(readlink /usr/local/bin/edge-agent 2>/dev/null)" = /opt/edge-agent/venv/bin/edge-agent ]; then
  rm -f /usr/local/bin/edge-agent
fi
rm -rf /opt/edge-agent
if [ "$purge" = yes ]; then
  rm -rf /etc/edge-agent /var/lib/edge-agent
  ! id edge-agent >/dev/null 2>&1 || userdel edge-agent
  echo "uninstall.sh: removed edge-agent, its config, its data and its user"
else
  echo "uninstall.sh: removed edge-agent; kept /etc/edge-agent and /var/lib/edge-agent" \
    "(./deploy/uninstall.sh --purge removes them)"
fi
