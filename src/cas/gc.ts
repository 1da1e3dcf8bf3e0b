/**
 * Garbage collection over explicit roots (refs). Marks every id reachable from a ref — counting
 * its references — then sweeps what has none. Runs under the store's exclusive lock, which every
 * add holds shared for its whole duration, so an object written by a concurrent add is never
 * swept before that add has recorded its root.
 *
 * The store itself does not understand nodes: the caller passes `references`, which lists the ids
 * an object's bytes refer to (the DAG's decoder), and manifests are followed to their chunks here.
 *
 * @example
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * const report = await collectGarbage(store, { dryRun: true, references });
 * ```
 * @module
 */
import type { Store } from "./store.ts";

/** Ids referred to by an object's bytes: objects (nodes, chunks) and manifests. */
export type ReferenceFn = (bytes: Uint8Array) => { objects: string[]; manifests: string[] };

/** What a gc found and (unless dry) removed. */
export interface GcReport {
  roots: number;
  reachableObjects: number;
  reachableManifests: number;
  removedObjects: number;
  removedManifests: number;
  removedBytes: number;
  /** Ids referenced but absent (a damaged store; `hd cas verify` says more). */
  missing: string[];
  dryRun: boolean;
}

/** Marks from the refs and returns the reference count of every reachable id. */
export function markReachable(
  store: Store,
  references: ReferenceFn,
): {
  objects: Map<string, number>;
  manifests: Map<string, number>;
  missing: string[];
  roots: number;
} {
  const objects = new Map<string, number>();
  const manifests = new Map<string, number>();
  const missing: string[] = [];
  const stack: string[] = [];
  const refs = store.listRefs();
  const pushObj = (id: string) => {
    const n = objects.get(id);
    objects.set(id, (n ?? 0) + 1);
    if (n === undefined) stack.push(id);
  };
  for (const [, id] of refs) pushObj(id);
  while (stack.length) {
    const id = stack.pop()!;
    let bytes: Uint8Array;
    try {
      bytes = store.getObject(id);
    } catch {
      missing.push(id);
      continue;
    }
    const r = references(bytes);
    for (const o of r.objects) pushObj(o);
    for (const m of r.manifests) {
      const n = manifests.get(m);
      manifests.set(m, (n ?? 0) + 1);
      if (n !== undefined) continue;
      try {
        for (const c of store.getManifest(m).chunks) pushObj(c);
      } catch {
        missing.push(m);
      }
    }
  }
  return { objects, manifests, missing, roots: refs.length };
}

function estimateBytes(store: Store, dead: Set<string>): number {
  let n = 0;
  for (const key of dead) {
    n += key.length === 65
      ? store.storedSize("manifests", key.slice(1))
      : store.storedSize("objects", key);
  }
  return n;
}

/** Runs a gc (or, with `dryRun`, reports what one would remove). */
export async function collectGarbage(
  store: Store,
  opts: {
    dryRun?: boolean;
    references: ReferenceFn;
    /**
     * Called under the exclusive lock with the reachable set, so that caches derived from the
     * store (materialized layer directories) can be swept in the same critical section.
     */
    sweepDerived?: (isLive: (id: string) => boolean, dryRun: boolean) => void;
  },
): Promise<GcReport> {
  const dryRun = opts.dryRun ?? false;
  return await store.withLock("exclusive", () => {
    const live = markReachable(store, opts.references);
    const report: GcReport = {
      roots: live.roots,
      reachableObjects: live.objects.size,
      reachableManifests: live.manifests.size,
      removedObjects: 0,
      removedManifests: 0,
      removedBytes: 0,
      missing: live.missing,
      dryRun,
    };
    const dead = new Set<string>();
    for (const id of store.list("objects")) {
      if (!live.objects.has(id)) (dead.add(id), report.removedObjects++);
    }
    for (const id of store.list("manifests")) {
      if (!live.manifests.has(id)) (dead.add("m" + id), report.removedManifests++);
    }
    if (dryRun) {
      report.removedBytes = estimateBytes(store, dead);
    } else if (dead.size) {
      store.bumpGeneration();
      report.removedBytes = store.removeObjects(dead);
    }
    opts.sweepDerived?.((id) => live.objects.has(id), dryRun);
    if (!dryRun) {
      store.forgetKnown();
      // Temp files left by crashed writers (older than an hour) go too.
      try {
        for (const e of Deno.readDirSync(`${store.root}/tmp`)) {
          const p = `${store.root}/tmp/${e.name}`;
          const st = Deno.lstatSync(p);
          if (Date.now() - (st.mtime?.getTime() ?? 0) > 3600_000) Deno.removeSync(p);
        }
      } catch { /* no tmp dir */ }
    }
    return report;
  });
}
