#!/usr/bin/env bash
# Installs what hd needs on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/setup.sh        what `hd` itself needs: Deno 2.9.6 (npm), fuse3 + libfuse3-3 (the
#                                FUSE projection), util-linux + uidmap + iproute2 (namespaces,
#                                networks), runc + tini (the sandbox's OCI runtime and its PID 1), and Node.js for the
#                                bundled examples where the machine has none
#   bash scripts/setup.sh test   the same, plus the real peers and servers the tests and benches
#                                use (gcc, registries, restic, squashfuse, debootstrap, …)
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
for_tests=0
[ "${1:-}" = "test" ] && for_tests=1

if ! command -v deno >/dev/null 2>&1 || ! deno --version 2>/dev/null | grep -q '^deno 2\.9\.'; then
  echo "setup: installing Deno 2.9.6 from npm" >&2
  $SUDO npm install -g deno@2.9.6 >/dev/null
fi

PKGS=(fuse3 libfuse3-3 util-linux uidmap iproute2 nftables procps runc tini)
if [ "$for_tests" -eq 1 ]; then
  PKGS+=(gcc libfuse3-dev b3sum restic git skopeo umoci docker-registry dpkg-dev attr squashfuse
    squashfs-tools busybox-static debootstrap psmisc podman podman-compose apache2-utils)
fi
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
