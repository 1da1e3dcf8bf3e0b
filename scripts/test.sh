#!/usr/bin/env bash
# The test command: sets the machine up (scripts/setup.sh), then runs the whole suite.
# Extra arguments go to `deno test` (e.g. a path: bash scripts/test.sh tests/cas).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh" test
cd "$repo"
if [ $# -gt 0 ]; then exec deno test -A "$@"; fi
exec deno task test
