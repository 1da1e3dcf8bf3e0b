#!/usr/bin/env bash
# Installs what hd and its tests need on a fresh Debian/Ubuntu machine (idempotent):
# Deno 2.9.6 from npm, and Debian packages: fuse3 + libfuse3-3 (the FUSE projection), util-linux
# (unshare, setsid), and the real peers the tests and benches compare against or use as servers.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v deno >/dev/null 2>&1 || ! deno --version 2>/dev/null | grep -q '^deno 2\.9\.'; then
  echo "setup: installing Deno 2.9.6 from npm" >&2
  $SUDO npm install -g deno@2.9.6 >/dev/null
fi

PKGS=(fuse3 libfuse3-3 libfuse3-dev gcc util-linux runc tini b3sum restic git skopeo umoci docker-registry dpkg-dev attr
  squashfuse squashfs-tools busybox-static debootstrap uidmap iproute2 procps psmisc)
# Node.js (examples, e2e tests, benches): Debian's nodejs when the machine has no node at all
# (machines that ship NodeSource's nodejs already have node and npm).
command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Fetch and cache the npm dependencies pinned in deno.lock.
cd "$(dirname "$0")/.."
deno install --frozen >/dev/null 2>&1 || deno cache --frozen cli.ts >/dev/null
