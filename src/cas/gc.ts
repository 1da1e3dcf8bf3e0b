/**
 * Garbage collection over explicit roots: refs, and the open leases of writers that have stored
 * objects but not yet set the ref reaching them (lease.ts). Marks every id reachable from a root
 * — counting its references — then sweeps what has none, and reclaims duplicate copies (the same
 * id in several packs, or loose and packed). Runs under the store's exclusive lock; writers hold
 * it shared while they write and write their leases out before they give it up, so a gc sees
 * every object either reached from a ref or named by a lease.
 *
 * The store itself does not understand nodes: the caller passes `references`, which lists the ids
 * an object's bytes refer to (the DAG's decoder), and manifests are followed to their chunks here.
 *
 * @example
 * ```ts
 * import { collectGarbage, type ReferenceFn } from "./gc.ts";
 * import type { Store } from "./store.ts";
 * declare const store: Store;
 * declare const references: ReferenceFn;
 * const report = await collectGarbage(store, { dryRun: true, references });
 * ```
 * @module
 */
import {
  type LeaseRecord,
  leaseVerdict,
  listLeases,
  type ProcProbe,
  systemProbe,
} from "./lease.ts";
import { keyId, keyKind, type ObjectKey, objectKey } from "./key.ts";
import type { Store } from "./store.ts";

/** Ids referred to by an object's bytes: objects (nodes, chunks) and manifests. */
export type ReferenceFn = (bytes: Uint8Array) => { objects: string[]; manifests: string[] };

/** A lease a gc looked at. */
export interface LeaseReport {
  id: string;
  why: string;
  pid: number;
  /** Ids the lease names. */
  ids: number;
  /** Why it is live or expired. */
  state: string;
}

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
  /** Open leases that kept objects no ref reaches yet. */
  leases: LeaseReport[];
  /** Objects and manifests kept only because a live lease reaches them. */
  keptByLeases: number;
  /** Leases of dead processes (removed unless dry), and unreadable lease files. */
  expiredLeases: { path: string; why: string }[];
  /** Duplicate copies dropped (the same id stored twice), packs removed and rewritten. */
  duplicates: { copies: number; packsRemoved: number; packsRewritten: number };
  dryRun: boolean;
}

/** Reachability: reference counts of every id reached from the roots. */
export interface Marked {
  objects: Map<string, number>;
  manifests: Map<string, number>;
  /** Ids reached from a ref but absent. */
  missing: string[];
  /** Those of `missing` that are manifests. */
  missingManifests: Set<string>;
  /** Number of refs. */
  roots: number;
  /** Ids reached only from `extra` roots (leases). */
  extraOnly: number;
}

/**
 * Marks from the refs (then from `extra` roots, counted apart) and returns the reference count of
 * every reachable id.
 */
export function markReachable(
  store: Store,
  references: ReferenceFn,
  extra: { objects: string[]; manifests: string[] }[] = [],
): Marked {
  const objects = new Map<string, number>();
  const manifests = new Map<string, number>();
  const missing: string[] = [];
  const missingManifests = new Set<string>();
  let recordMissing = true;
  const stack: string[] = [];
  const refs = store.listRefs();
  const pushObj = (id: string) => {
    const n = objects.get(id);
    objects.set(id, (n ?? 0) + 1);
    if (n === undefined) stack.push(id);
  };
  const pushManifest = (m: string) => {
    const n = manifests.get(m);
    manifests.set(m, (n ?? 0) + 1);
    if (n !== undefined) return;
    try {
      for (const c of store.getManifest(m).chunks) pushObj(c);
    } catch {
      if (recordMissing) (missing.push(m), missingManifests.add(m));
    }
  };
  const drain = () => {
    while (stack.length) {
      const id = stack.pop()!;
      let bytes: Uint8Array;
      try {
        bytes = store.getObject(id);
      } catch {
        if (recordMissing) missing.push(id);
        continue;
      }
      const r = references(bytes);
      for (const o of r.objects) pushObj(o);
      for (const m of r.manifests) pushManifest(m);
    }
  };
  for (const [, id] of refs) pushObj(id);
  drain();
  const before = objects.size + manifests.size;
  // A lease may name ids whose write failed (nothing was kept): not damage.
  recordMissing = false;
  for (const e of extra) {
    for (const id of e.objects) pushObj(id);
    for (const m of e.manifests) pushManifest(m);
    drain();
  }
  return {
    objects,
    manifests,
    missing,
    missingManifests,
    roots: refs.length,
    extraOnly: objects.size + manifests.size - before,
  };
}

function estimateBytes(store: Store, dead: ReadonlySet<ObjectKey>): number {
  let n = 0;
  for (const key of dead) n += store.storedSize(keyKind(key), keyId(key));
  return n;
}

/**
 * Sorts the lease files of a store into live leases and expired ones (dead process, other boot,
 * unreadable file). Pure given `probe`.
 */
export function judgeLeases(
  found: { path: string; lease: LeaseRecord | null }[],
  probe: ProcProbe,
): { live: LeaseRecord[]; expired: { path: string; why: string }[] } {
  const live: LeaseRecord[] = [];
  const expired: { path: string; why: string }[] = [];
  for (const f of found) {
    if (!f.lease) {
      expired.push({ path: f.path, why: "not a readable lease file" });
      continue;
    }
    const v = leaseVerdict(f.lease, probe);
    if (v.live) live.push(f.lease);
    else expired.push({ path: f.path, why: `${f.lease.why}: ${v.why}` });
  }
  return { live, expired };
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
    /** How lease holders are checked (tests pass their own). */
    probe?: ProcProbe;
  },
): Promise<GcReport> {
  const dryRun = opts.dryRun ?? false;
  return await store.withLock("exclusive", () => {
    const { live: leases, expired } = judgeLeases(
      listLeases(store.root),
      opts.probe ?? systemProbe(),
    );
    const live = markReachable(store, opts.references, leases);
    const report: GcReport = {
      roots: live.roots,
      reachableObjects: live.objects.size,
      reachableManifests: live.manifests.size,
      removedObjects: 0,
      removedManifests: 0,
      removedBytes: 0,
      missing: live.missing,
      leases: leases.map((l) => ({
        id: l.id,
        why: l.why,
        pid: l.pid,
        ids: l.objects.length + l.manifests.length,
        state: `held by process ${l.pid}`,
      })),
      keptByLeases: live.extraOnly,
      expiredLeases: expired,
      duplicates: { copies: 0, packsRemoved: 0, packsRewritten: 0 },
      dryRun,
    };
    const dead = new Set<ObjectKey>();
    for (const id of store.list("objects")) {
      if (!live.objects.has(id)) (dead.add(objectKey("objects", id)), report.removedObjects++);
    }
    for (const id of store.list("manifests")) {
      if (!live.manifests.has(id)) {
        (dead.add(objectKey("manifests", id)), report.removedManifests++);
      }
    }
    if (dryRun) {
      const s = store.sweep(new Set(), { dryRun: true });
      report.removedBytes = estimateBytes(store, dead) + s.freed;
      report.duplicates = {
        copies: s.duplicates,
        packsRemoved: s.packsRemoved,
        packsRewritten: s.packsRewritten,
      };
    } else {
      // Before anything goes (a dropped duplicate moves ids too): other processes start over.
      const s = store.sweep(dead, { beforeChange: () => store.bumpGeneration() });
      report.removedBytes = s.freed;
      report.duplicates = {
        copies: s.duplicates,
        packsRemoved: s.packsRemoved,
        packsRewritten: s.packsRewritten,
      };
      for (const e of expired) {
        try {
          Deno.removeSync(e.path);
        } catch { /* released meanwhile */ }
      }
    }
    opts.sweepDerived?.((id) => live.objects.has(id), dryRun);
    if (!dryRun) {
      store.forgetKnown();
      // Temp files left by crashed writers (older than an hour) go too, and scratch stores a
      // killed `hd cas verify --repair` left (directories); one that cannot go stops nothing.
      let entries: Deno.DirEntry[] = [];
      try {
        entries = [...Deno.readDirSync(`${store.root}/tmp`)];
      } catch { /* no tmp dir */ }
      for (const e of entries) {
        const p = `${store.root}/tmp/${e.name}`;
        try {
          const st = Deno.lstatSync(p);
          if (Date.now() - (st.mtime?.getTime() ?? 0) > 3600_000) {
            Deno.removeSync(p, { recursive: st.isDirectory });
          }
        } catch { /* removed meanwhile, or not ours to remove */ }
      }
    }
    return report;
  });
}
