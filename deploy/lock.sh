#!/usr/bin/env bash
# Regenerate requirements/*.txt: the exact versions, with the sha256 of every file the
# package index holds for each (so one file serves x86_64 and aarch64), that install.sh
# and deploy/wheelhouse.sh install. Run after changing dependencies in pyproject.toml,
# review the diff, commit it. Needs the dev extra (pip-tools) and the package index.
#   ./deploy/lock.sh            # resolves for this machine's Python: use 3.11 (Debian 12)
#   ./deploy/lock.sh --upgrade  # newest releases the ranges in pyproject.toml allow
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = 3.11 ] || echo "lock.sh: warning: Python $version here; gateways run 3.11" >&2
# Only the package index: this machine's local wheel folders must not leak into the lock.
export PIP_CONFIG_FILE=/dev/null
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
        --no-emit-find-links --no-emit-trusted-host "$@")
export CUSTOM_COMPILE_COMMAND=deploy/lock.sh  # what the files' header says to run
mkdir -p requirements
"$python" -m piptools compile "${common[@]}" -o requirements/core.txt pyproject.toml
"$python" -m piptools compile "${common[@]}" --extra tflite -o requirements/tflite.txt pyproject.toml
echo "lock.sh: wrote requirements/core.txt and requirements/tflite.txt"
