#!/usr/bin/env bash
# Install or upgrade edge-agent as a systemd service on Debian 12 / Raspberry Pi OS bookworm
# (Python 3.11), as root, from a clone or the unpacked sdist.
#   ./deploy/install.sh                      dependencies from the package index, pinned and
#                                            hash-checked (requirements/core.txt)
#   ./deploy/install.sh --wheelhouse DIR     offline: everything from DIR (deploy/wheelhouse.sh)
#   ./deploy/install.sh --extra tflite       also the LiteRT backend (requirements/tflite.txt)
# Layout: code in /opt/edge-agent/venv, `edge-agent` linked into /usr/local/bin, config in
# /etc/edge-agent (kept on upgrade), data in /var/lib/edge-agent (kept on upgrade).
# An upgrade builds a new venv beside the old one and swaps them: a failed install leaves the
# running version untouched. Undo with ./deploy/uninstall.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/edge-agent lock=requirements/core.txt wheelhouse=""
while (($#)); do
  case "$1" in
    --wheelhouse) wheelhouse=$(realpath "$2"); shift 2 ;;
    --extra) lock="requirements/$2.txt"; shift 2 ;;
    *) echo "install.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
[ -f "$lock" ] || die "no $lock (see deploy/lock.sh)"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  [ -z "$wheelhouse" ] || die "python3-venv is missing: install it first (apt-get install python3-venv)"
  apt-get install -y -qq python3-venv >/dev/null
fi
id edge-agent >/dev/null 2>&1 ||
  useradd --system --home /var/lib/edge-agent --shell /usr/sbin/nologin edge-agent
usermod -a -G dialout edge-agent

# The new venv: pinned dependencies with their hashes, then the agent without dependencies.
from=()
if [ -n "$wheelhouse" ]; then
  arch=$(uname -m)
  [ -d "$wheelhouse/$arch" ] || die "no $wheelhouse/$arch: build it with deploy/wheelhouse.sh --arch $arch"
  from=(--no-index --find-links "$wheelhouse/$arch")
fi
# Each install gets its own venv (a venv cannot move: its scripts name their interpreter
# by path); /opt/edge-agent/venv is a link to the current one, swapped once the new one works.
install -d -m 0755 "$prefix"
venv="$prefix/venv-$(date +%Y%m%d%H%M%S)"
python3 -m venv "$venv"
trap 'rm -rf "$venv"' EXIT  # until the swap: a failed install leaves nothing behind
pip=("$venv/bin/pip" --quiet --disable-pip-version-check)
"${pip[@]}" install --require-hashes --only-binary=:all: --no-deps "${from[@]}" -r "$lock" ||
  die "dependencies not installed; the running version (if any) is untouched"
if [ -n "$wheelhouse" ]; then
  agent=$(ls "$wheelhouse"/plant_edge_agent-*.whl | sort -V | tail -1)
else
  agent=.
fi
"${pip[@]}" install --no-deps "${from[@]}" "$agent" || die "the agent did not install"
"${pip[@]}" check >/dev/null || die "inconsistent dependencies: $("${pip[@]}" check)"
new=$("$venv/bin/edge-agent" --version)

old="" previous=""
[ -x "$prefix/venv/bin/edge-agent" ] && old=$("$prefix/venv/bin/edge-agent" --version || true)
if [ -L "$prefix/venv" ]; then
  previous=$(readlink -f "$prefix/venv")
elif [ -d "$prefix/venv" ]; then  # the layout before versioned venvs
  previous="$prefix/venv-previous"; rm -rf "$previous"; mv "$prefix/venv" "$previous"
fi
ln -sfn "$venv" "$prefix/venv.link" && mv -T "$prefix/venv.link" "$prefix/venv"
trap - EXIT
ln -sfn "$prefix/venv/bin/edge-agent" /usr/local/bin/edge-agent
install -m 0644 README.md "$prefix/README.md"

# Config and data: created once, never overwritten.
install -d -m 0750 -o root -g edge-agent /etc/edge-agent
if [ ! -f /etc/edge-agent/config.yaml ]; then
  install -m 0640 -o root -g edge-agent config.example.yaml /etc/edge-agent/config.yaml
  say "wrote /etc/edge-agent/config.yaml from config.example.yaml: edit it"
fi
install -d -m 0750 -o edge-agent -g edge-agent /var/lib/edge-agent
# OPC UA certificates: the unit lets the service write here (trust: first_use, rejected/).
# Keys inside: root:edge-agent 0640; the agent refuses secret files open to other users.
install -d -m 0750 -o edge-agent -g edge-agent /etc/edge-agent/pki
install -m 0644 systemd/edge-agent.service /etc/systemd/system/edge-agent.service
[ -z "$previous" ] || [ "$previous" = "$venv" ] || rm -rf "$previous"
if [ -n "$old" ]; then say "upgraded: $old -> $new"; else say "installed: $new"; fi
# The check runs as the service does: with its environment file, if there is one.
(
  set -a
  [ ! -f /etc/edge-agent/environment ] || . /etc/edge-agent/environment
  edge-agent check-config -c /etc/edge-agent/config.yaml
) || say "fix the config, then: systemctl enable --now edge-agent" >&2
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if systemctl is-active --quiet edge-agent; then
    systemctl restart edge-agent && say "edge-agent restarted on $new"
  else
    say "start with: systemctl enable --now edge-agent"
  fi
fi
