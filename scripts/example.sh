#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs `hd up` on the bundled example project:
# two Node.js services, a cached install step and a chained build step. Ctrl-C stops everything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo/examples/hello"
exec deno run -A "$repo/cli.ts" up "$@"
