#!/usr/bin/env bash
# Build a wheelhouse for offline installs: every pinned dependency (requirements/*.txt, hashes
# checked) as a binary wheel for CPython 3.11 on x86_64 and aarch64 (Debian 12, Raspberry Pi OS
# bookworm: glibc 2.36), plus the agent's own wheel. Copy the folder to the gateway with a clone
# (or the sdist) and run: ./deploy/install.sh --wheelhouse DIR
#   ./deploy/wheelhouse.sh [--arch x86_64|aarch64] [--extra tflite] [OUT]   (default: wheelhouse/, both)
set -euo pipefail
cd "$(dirname "$0")/.."
arches=(x86_64 aarch64) lock=requirements/core.txt out=wheelhouse
while (($#)); do
  case "$1" in
    --arch) arches=("$2"); shift 2 ;;
    --extra) lock="requirements/$2.txt"; shift 2 ;;
    -*) echo "wheelhouse.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -f "$lock" ] || { echo "wheelhouse.sh: no $lock (see deploy/lock.sh)" >&2; exit 2; }
python=.venv/bin/python; [ -x "$python" ] || python=python3
for arch in "${arches[@]}"; do
  # Every manylinux tag glibc 2.36 accepts: with only manylinux2014 pip silently settles on
  # stale releases that still ship those, and with pinned versions it finds nothing at all.
  platforms=()
  for glibc in 17 24 26 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${glibc}_$arch"); done
  platforms+=(--platform "manylinux2014_$arch")
  "$python" -m pip download --quiet --only-binary=:all: --require-hashes -r "$lock" \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" -d "$out/$arch"
  echo "wheelhouse.sh: $out/$arch: $(ls "$out/$arch" | wc -l) wheels, $(du -sh "$out/$arch" | cut -f1)"
done
# The agent itself: pure Python, one wheel for both.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" .
cp "$lock" "$out/requirements.txt"  # what install.sh checks the wheels against
echo "wheelhouse.sh: $out/$(cd "$out" && ls plant_edge_agent-*.whl | tail -1)"
