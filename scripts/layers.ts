/**
 * The layer order of hd's source, written once as data: each directory of `src/` (and `ffi/`) may
 * import only itself and the directories listed before it. `scripts/check_layers.ts` (run by
 * `deno task check`) enforces it, and docs/architecture.md lists the same order.
 *
 * @example
 * ```ts
 * import { LAYERS, mayImport } from "./layers.ts";
 * console.log(LAYERS[0].dir, mayImport("src/dag", "src/cas")); // "ffi" true
 * ```
 * @module
 */

/** One layer: its directory (relative to the repository) and what it holds. */
export interface Layer {
  dir: string;
  holds: string;
}

/** Bottom first. A directory may import itself and any directory above it in this list. */
export const LAYERS: readonly Layer[] = [
  { dir: "ffi", holds: "raw bindings: libc, libfuse3, libzstd" },
  {
    dir: "src/sys",
    holds: "system helpers: errors, files, modes, globs, processes, sockets, libc",
  },
  { dir: "src/cas", holds: "chunks, objects, packs, refs, gc, verify" },
  { dir: "src/dag", holds: "nodes, trees, diff, checkout" },
  { dir: "src/scan", holds: "walk, filters, stat cache, ingest" },
  { dir: "src/config", holds: "the hd.toml and hd.lock model: parse, types, positions, providers" },
  {
    dir: "src/ingest",
    holds: "Dockerfiles and compose files translated into hd.toml: tokens, meaning, reports",
  },
  {
    dir: "src/env",
    holds: "compiling an environment from hd.toml and the tracked tree; its report",
  },
  { dir: "src/watch", holds: "the watcher and incremental update" },
  { dir: "src/oci", holds: "image references, registries, tar, pulls" },
  { dir: "src/remote", holds: "the remote build cache: OCI registry and S3 backends, packs" },
  { dir: "src/mount", holds: "the FUSE projection" },
  { dir: "src/sandbox", holds: "root filesystems, namespaces, process groups" },
  {
    dir: "src/runtime",
    holds: "where steps and services run: the runtime interface, host, sandbox",
  },
  { dir: "src/services", holds: "supervisor, dev loop, control socket" },
  { dir: "src/cli", holds: "one file per command" },
];

/** The layer index of a repository-relative file path, or -1 outside every layer. */
export function layerOf(path: string): number {
  let best = -1;
  let bestLen = -1;
  LAYERS.forEach((l, i) => {
    if ((path === l.dir || path.startsWith(l.dir + "/")) && l.dir.length > bestLen) {
      best = i;
      bestLen = l.dir.length;
    }
  });
  return best;
}

/** True when code in `from` (a path) may import `to` (a path): same layer or one below it. */
export function mayImport(from: string, to: string): boolean {
  const a = layerOf(from);
  const b = layerOf(to);
  if (a < 0) return true; // cli.ts, mod.ts, tests, bench, scripts: anything
  if (b < 0) return false; // src/ never imports the entry points, tests or scripts
  return b <= a;
}
