#!/usr/bin/env bash
# Check a built wheel as a user gets it: its package data is inside, it installs into a
# fresh venv (no clone on the path), and `edge-agent demo` runs from it and shows an alert.
# Usage: ./deploy/check-wheel.sh dist/plant_edge_agent-*.whl [pip install options, e.g. --no-index --find-links DIR]
set -euo pipefail
wheel=$(realpath "$1"); shift
# Package data the commands need at run time: the demo's config and model, the site view's page.
python3 - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = ["edge_agent/sim/demo.yaml", "edge_agent/sim/demo_pump.onnx",
          "edge_agent/sim/demo_pump.card.json", "edge_agent/web/static/index.html",
          "edge_agent/web/static/app.js", "edge_agent/web/static/app.css",
          "edge_agent/py.typed"]
missing = [n for n in needed if n not in names]
if missing:
    sys.exit(f"check-wheel: not in the wheel: {', '.join(missing)}")
print(f"check-wheel: package data present ({len(needed)} files checked)")
PY
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$@" "$wheel"
# From a neutral folder, so `import edge_agent` cannot find a clone.
cd "$work"
where=$("$work/venv/bin/python" -c 'import edge_agent; print(edge_agent.__file__)')
case "$where" in "$work/venv/"*) ;; *) echo "check-wheel: edge_agent imported from $where" >&2; exit 1 ;; esac
"$work/venv/bin/edge-agent" --version
"$work/venv/bin/edge-agent" demo --duration 20s --speed 2 | tee "$work/demo.out"
grep -q "RAISED" "$work/demo.out" || { echo "check-wheel: the demo showed no alert" >&2; exit 1; }
echo "check-wheel: ok ($(basename "$wheel") installs and its demo raises an alert)"
