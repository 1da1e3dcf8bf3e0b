#!/usr/bin/env bash
# Sets up what hd needs (scripts/setup.sh), puts `hd` on the PATH (deno install -g, in
# ~/.deno/bin) and runs `hd up` on the bundled example project: two Node.js services, a cached
# install step and a chained build step. Ctrl-C stops everything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh"
(cd "$repo" && deno install -g -A -f -q -n hd --v8-flags=--max-semi-space-size=1 --config deno.json cli.ts >/dev/null 2>&1) ||
  echo "setup: could not install hd on the PATH; running it from source" >&2
cd "$repo/examples/hello"
exec deno run -A --v8-flags=--max-semi-space-size=1 --config "$repo/deno.json" "$repo/cli.ts" up "$@"
