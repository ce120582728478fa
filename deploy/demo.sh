#!/usr/bin/env bash
# Install edge-agent into ./.venv (Debian/Raspberry Pi OS) and run the demo.
# Usage: ./deploy/demo.sh [--duration SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v socat >/dev/null || missing+=(socat)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  [ -z "$sudo" ] || command -v sudo >/dev/null ||
    { echo "deploy/demo.sh: needs apt packages ${missing[*]}: run as root or install sudo" >&2; exit 1; }
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi
# pip, not python: a venv made before python3-venv was installed has no pip.
[ -x .venv/bin/pip ] || python3 -m venv .venv
.venv/bin/python -m pip install -q .
exec .venv/bin/edge-agent demo "$@"
