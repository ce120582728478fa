#!/usr/bin/env bash
# Install what the tests need (Debian/Raspberry Pi OS), then run them: lint, types, pytest.
# Usage: ./deploy/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v socat >/dev/null || missing+=(socat)
# The site view's browser tests drive Debian's chromium through Playwright (never its download).
command -v chromium >/dev/null || missing+=(chromium)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  [ -z "$sudo" ] || command -v sudo >/dev/null ||
    { echo "deploy/test.sh: needs apt packages ${missing[*]}: run as root or install sudo" >&2; exit 1; }
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi
# pip, not python: a venv made before python3-venv was installed has no pip.
[ -x .venv/bin/pip ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# Lint and types first, but run the tests whatever they say: one run shows every problem.
status=0
.venv/bin/ruff check edge_agent tests bench || status=1
.venv/bin/ruff format --check edge_agent tests bench || status=1
.venv/bin/mypy || status=1
.venv/bin/pytest "$@" || status=$?
# The release artefacts (the whole run only): sdist and wheel built and checked, the wheel
# installed into a fresh venv and its demo run from there (deploy/check-wheel.sh, about 45 s).
if (($# == 0)); then
  rm -rf dist
  { .venv/bin/python -m build -q --outdir dist . >/dev/null &&
    .venv/bin/twine check --strict dist/* &&
    ./deploy/check-wheel.sh dist/*.whl; } || status=1
fi
exit "$status"
