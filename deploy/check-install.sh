#!/usr/bin/env bash
# The install path as a plant gets it, checked in a bare Debian 12 root (debootstrap minbase
# plus python3-venv) with no network: install from a wheelhouse, run the agent, upgrade to a
# newer wheel (config and data kept), uninstall (config and data kept), purge.
# Run as root from a clone; needs debootstrap and the package index (for the base root and
# the wheelhouse, both built outside the chroot). About 50 s plus 2-3 min of debootstrap; not part
# of CI (see README); record a run in BENCHMARKS.md.
#   ./deploy/check-install.sh [--base DIR]   reuse (or keep) the debootstrapped base root in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
base=""
[ "${1:-}" != --base ] || base=$(realpath -m "$2")
[ "$(id -u)" -eq 0 ] || { echo "check-install.sh: run as root" >&2; exit 1; }
work=$(mktemp -d /var/tmp/edge-agent-check-install.XXXXXX)
root="$work/root"
step() { echo "check-install.sh: $*"; }
fail() { echo "check-install.sh: FAILED: $*" >&2; exit 1; }
cleanup() {
  for m in dev/pts dev proc sys; do ! mountpoint -q "$root/$m" || umount -l "$root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The bare root (python3-venv is what install.sh needs and cannot fetch offline).
[ -n "$base" ] || base="$work/base"
if [ ! -x "$base/usr/bin/python3" ]; then
  step "debootstrap --variant=minbase bookworm (2-3 min)"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$base" >"$work/debootstrap.log" ||
    { tail "$work/debootstrap.log"; fail "debootstrap"; }
fi
cp -a "$base" "$root"

# 2. What goes onto the gateway: the source (as released) and wheelhouses for two versions.
step "wheelhouse for $(uname -m), the agent as released and as a newer version"
git archive --format=tar --prefix=src/ HEAD | tar -x -C "$root/root"
./deploy/wheelhouse.sh --arch "$(uname -m)" "$root/root/wheelhouse" >/dev/null 2>"$work/wheelhouse.log" ||
  { tail "$work/wheelhouse.log"; fail "wheelhouse"; }
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' edge_agent/__init__.py)
newer="$version.post1"
cp -a "$root/root/src" "$work/newer"
sed -i "s/^__version__ = .*/__version__ = \"$newer\"/" "$work/newer/edge_agent/__init__.py"
mkdir -p "$root/root/wheelhouse2"
cp -a "$root/root/wheelhouse/$(uname -m)" "$root/root/wheelhouse2/"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$root/root/wheelhouse2" "$work/newer" 2>/dev/null
cp -a "$work/newer" "$root/root/src2"

# 3. Into the root, with no network at all (a fresh network namespace has only lo, down).
mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"; mount --rbind /dev "$root/dev"
inside() { unshare --net chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root bash -euo pipefail -c "$1"; }
inside 'python3 -c "import socket; socket.create_connection((\"1.1.1.1\", 53), 2)" 2>/dev/null && exit 1 || true' ||
  fail "the chroot has a network"

step "install from the wheelhouse (offline)"
inside 'cd /root/src && ./deploy/install.sh --wheelhouse /root/wheelhouse' | tee "$work/install.log"
inside 'command -v edge-agent | grep -qx /usr/local/bin/edge-agent' || fail "edge-agent not on PATH"
inside "edge-agent --version | grep -qx 'edge-agent $version'" || fail "edge-agent --version"
# A config of the operator's own, and data from a short run as the service's user.
inside 'cat > /etc/edge-agent/config.yaml <<EOF
agent: {id: chroot-gw, data_dir: /var/lib/edge-agent}
sinks: [{type: jsonl, name: local, path: alerts.jsonl}]
EOF
edge-agent check-config -c /etc/edge-agent/config.yaml
runuser -u edge-agent -- timeout -s INT 8 edge-agent run --config /etc/edge-agent/config.yaml || [ $? -eq 124 ]
test -s /var/lib/edge-agent/twin.db && test -s /var/lib/edge-agent/outbox.db
edge-agent twin status --config /etc/edge-agent/config.yaml
edge-agent outbox status --config /etc/edge-agent/config.yaml
edge-agent status --config /etc/edge-agent/config.yaml
sha256sum /etc/edge-agent/config.yaml /var/lib/edge-agent/*.db > /root/kept.sha256' ||
  fail "running the installed agent"

step "upgrade to $newer (offline)"
inside 'cd /root/src2 && ./deploy/install.sh --wheelhouse /root/wheelhouse2' | tee -a "$work/install.log"
inside "edge-agent --version | grep -qx 'edge-agent $newer'" || fail "not upgraded"
inside 'sha256sum -c --quiet /root/kept.sha256' || fail "the upgrade changed config or data"
inside '[ $(ls -d /opt/edge-agent/venv-* | wc -l) -eq 1 ]' || fail "the old venv was left behind"

step "uninstall (keeps config and data), then purge"
inside 'cd /root/src2 && ./deploy/uninstall.sh'
inside '! command -v edge-agent && [ ! -e /opt/edge-agent ] && sha256sum -c --quiet /root/kept.sha256' ||
  fail "uninstall"
inside 'cd /root/src2 && ./deploy/uninstall.sh --purge'
inside '[ ! -e /etc/edge-agent ] && [ ! -e /var/lib/edge-agent ] && ! id edge-agent 2>/dev/null' ||
  fail "purge"
step "ok: offline install $version, run, upgrade to $newer keeping config and data, uninstall, purge"
