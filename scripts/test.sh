#!/usr/bin/env bash
# The test command: sets the machine up (scripts/setup.sh), then runs the whole suite.
# Extra arguments go to `deno test` (e.g. a path: bash scripts/test.sh tests/cas).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh" test
cd "$repo"
# the npm the tests run (npm ci in build steps) writes its debug logs into a temp dir of this run,
# not ~/.npm/_logs (logs-max=0 would instead delete the user's older logs there)
npm_logs="$(mktemp -d)"
trap 'rm -rf "$npm_logs"' EXIT
export npm_config_logs_dir="$npm_logs"
# no idle mount server or spare supervisor outlives a test (the tests that want one set these)
export HD_MOUNT_LINGER=0 HD_SPARE_LINGER=0
if [ $# -gt 0 ]; then deno test -A "$@"; else deno task test; fi
