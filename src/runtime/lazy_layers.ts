/**
 * Lazy environments: instead of copying every layer out of the store (materializeLayer), one FUSE
 * server per environment projects all of the environment's layers at once — a synthetic tree whose
 * entries are the layer trees, named by id — on `<project>/.hd/sandbox/layers`, and the overlay's
 * lowerdirs are `layers/<id>`. The server is an `hd mount --layers` process (same registry, stale
 * detection and `hd unmount` as `hd mount`), read-only, showing whiteouts as overlayfs reads them.
 *
 * @example
 * ```ts
 * import { decideLayers, fuseAvailable } from "./lazy_layers.ts";
 * const d = decideLayers({ option: "lazy", env: undefined, fuse: fuseAvailable() });
 * if (d.note) console.error(d.note);
 * ```
 * @module
 */
import { symlinkInState } from "../sys/fs.ts";
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { S_IFDIR } from "../sys/mode.ts";
import { loadFuse } from "../mount/fuse.ts";
import { uniqueLayers } from "../sandbox/layers.ts";
import {
  findMount,
  forceUnmount,
  mountKey,
  spawnMountServer,
  unmountDir,
} from "../mount/manager.ts";

/** How layers reach the overlay. */
export type LayersMode = "lazy" | "materialized";

/** What {@link decideLayers} chose, with the one-line note to show (a fallback), if any. */
export interface LayersDecision {
  mode: LayersMode;
  note?: string;
}

/**
 * Chooses how an environment's layers are provided: `HD_LAYERS` (when set and not empty) wins
 * over `[options] layers`, the default is materialized, and lazy falls back to materialized with
 * a note when FUSE is unavailable. An unknown `HD_LAYERS` value is an error.
 */
export function decideLayers(i: {
  option?: LayersMode;
  env?: string;
  fuse: { ok: boolean; why?: string };
}): LayersDecision {
  let want: LayersMode = i.option ?? "materialized";
  if (i.env !== undefined && i.env !== "") {
    if (i.env !== "lazy" && i.env !== "materialized") {
      throw new HdError(
        `Cannot choose how to provide layers: HD_LAYERS="${i.env}" is neither lazy nor materialized`,
        "set HD_LAYERS=lazy or HD_LAYERS=materialized (or unset it to use [options] layers)",
      );
    }
    want = i.env;
  }
  if (want === "lazy" && !i.fuse.ok) {
    return {
      mode: "materialized",
      note: `lazy layers unavailable (${i.fuse.why ?? "no FUSE"}): materializing them instead`,
    };
  }
  return { mode: want };
}

/** Whether a FUSE server can run here: /dev/fuse present and libfuse3 loadable. */
export function fuseAvailable(): { ok: boolean; why?: string } {
  try {
    loadFuse().close();
    return { ok: true };
  } catch (e) {
    return { ok: false, why: (e as Error).message.replace(/^Cannot mount: /, "") };
  }
}

/** The tree a lazy environment's server serves: one entry per layer, named by its id. */
export function layersRoot(store: Store, layers: string[]): string {
  const root = new MemDir(S_IFDIR | 0o755);
  for (const id of layers) root.entries.set(id, MemDir.lazy(id, store));
  return new Tree(root).commit(store);
}

/** See src/sys/fs.ts (one check for every path below a project's `.hd`). */
export { symlinkInState };

/** A started (or reused) layer server. */
export interface LayerMount {
  /** Mount point of the projection. */
  dir: string;
  /** Root of the served tree ({@link layersRoot}). */
  root: string;
  pid: number;
  /** Overlay lowerdirs, highest priority first. */
  lowers: string[];
  reused: boolean;
  ms: number;
}

/**
 * Serves `layers` (lowest first) on `dir` through an `hd mount --layers` process, reusing a live
 * server of the same tree, replacing one of another tree and recovering a stale mount. Returns
 * once the mount answers.
 */
export async function startLayerMount(
  store: Store,
  dir: string,
  layers: string[],
): Promise<LayerMount> {
  // a project can ship its own .hd/: a symlink on the way would put the mount (or an unmount)
  // elsewhere on the host: refused before anything is touched
  const link = symlinkInState(dir);
  if (link) {
    throw new HdError(
      `Cannot serve the environment's layers on ${dir}: ${link} is a symlink`,
      "remove it (hd keeps its own state in .hd/; a project must not ship one)",
    );
  }
  const t0 = performance.now();
  const root = layersRoot(store, layers);
  // a layer given twice is one lowerdir (overlayfs refuses a repeated one with ELOOP)
  const lowers = uniqueLayers(layers).reverse().map((id) => `${dir}/${id}`);
  const cur = findMount(store, dir);
  if (cur?.state === "live" && cur.root === root) {
    return { dir, root, pid: cur.pid, lowers, reused: true, ms: performance.now() - t0 };
  }
  if (cur) await unmountDir(store, dir);
  else forceUnmount(dir);
  Deno.mkdirSync(dir, { recursive: true });
  const log = `${store.root}/mounts/${mountKey(dir)}.log`;
  const r = await spawnMountServer(store, root, dir, log, ["--layers"]);
  if ("failed" in r) {
    throw new HdError(
      `Cannot serve the environment's layers on ${dir}: the layer server ${r.failed}`,
      `see ${log}; HD_LAYERS=materialized copies the layers instead`,
    );
  }
  return { dir, root, pid: r.pid, lowers, reused: false, ms: performance.now() - t0 };
}

/** Whether the layer server on `dir` is live (a lazy root whose lowers still answer). */
export function layerMountLive(store: Store, dir: string): boolean {
  return findMount(store, dir)?.state === "live";
}

/**
 * Stops the layer server on `dir` (SIGTERM to the pid in the store's registry, then detaches what
 * is left). Without the store only the mount is detached (the server then exits on its own).
 */
export async function stopLayerMount(store: Store | null, dir: string): Promise<void> {
  if (store && findMount(store, dir)) await unmountDir(store, dir);
  else forceUnmount(dir);
}
