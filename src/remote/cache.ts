/**
 * The remote cache: build step results shared through an OCI registry or an S3 bucket
 * (docs/remote.md). {@link RemoteCache.lookup} finds a step's result by its hash,
 * {@link RemoteCache.fetch} downloads the packs holding what the store lacks (each checked by
 * SHA-256 and every entry by BLAKE3 before anything is stored), {@link RemoteCache.push} uploads
 * a step's output layer: packs the remote does not have yet, then the index, then the tag.
 *
 * The store keeps the mapping between the two worlds in `remote/<key>.json` (per remote): which
 * BLAKE3 ids each remote pack (SHA-256) holds. A push packs only ids that no known pack holds, so
 * after a one-file edit it uploads one small pack, and a push cut short re-runs cheaply (packs are
 * deterministic and a HEAD skips those already there).
 *
 * @example
 * ```ts
 * import { openRemoteCache } from "./cache.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const rc = openRemoteCache(store, "127.0.0.1:5000/team/cache");
 * const ix = await rc.lookup("ab".repeat(32));
 * if (ix) await rc.fetch(ix);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { decodeManifest, manifestId } from "../cas/manifest.ts";
import { sha256Digest } from "../oci/registry.ts";
import { HdError } from "../sys/errors.ts";
import { type Backend, openBackend } from "./backend.ts";
import { parseRegistryRef, RegistryBackend } from "./registry.ts";
import {
  buildPacks,
  collectTree,
  encodeIndex,
  type IndexPack,
  type Key,
  manifestIndex,
  MAX_INDEX_BYTES,
  MAX_PACK_BYTES,
  missingFromTree,
  PACK_TARGET,
  parseIndex,
  type StepIndex,
  stepManifest,
  verifyPack,
  VOLUME_ARTIFACT,
  volumeKey,
  volumeTag,
} from "./wire.ts";

/** What a fetch did. */
export interface FetchStats {
  packs: number;
  bytes: number;
  objects: number;
}

/** What a push did. */
export interface PushStats {
  step: string;
  /** Packs uploaded / found on the remote already / mounted from another repository. */
  uploaded: number;
  skipped: number;
  mounted: number;
  /** Bytes of packs uploaded. */
  bytes: number;
  /** Bytes of the index blob and manifest uploaded (the index names every id of the tree). */
  metaBytes: number;
  objects: number;
}

/** A remote cache (see the module doc). */
export interface RemoteCache {
  /** The remote as configured. */
  readonly describe: string;
  /** The index of step `step`'s result, or null when the remote has none. */
  lookup(step: string): Promise<StepIndex | null>;
  /** Downloads what the store lacks of a result; on return the tree is complete in the store. */
  fetch(ix: StepIndex): Promise<FetchStats>;
  /** Uploads the result of step `step` (its output layer, tree `tree`). */
  push(step: string, tree: string): Promise<PushStats>;
  /** Hashes of the steps the remote holds. */
  list(): Promise<string[]>;
  /**
   * Uploads the snapshot (tree `tree`) of named volume `name` of environment `env`, tagged
   * {@link volumeTag} (moving the tag: the latest push wins). `stats.step` is the volume's key.
   */
  pushVolume(env: string, name: string, tree: string): Promise<PushStats>;
  /** Tags of the volume snapshots the remote holds (`volume-…`, see {@link volumeTag}). */
  listVolumes(): Promise<string[]>;
  /** The index of the snapshot of volume `env`/`name` the remote holds, or null. */
  lookupVolume(env: string, name: string): Promise<StepIndex | null>;
}

interface Mapping {
  remote: string;
  packs: Record<string, { size: number; objects: string[]; manifests: string[] }>;
}

/** Most uploads in flight at once. */
export const PUSH_PARALLEL = 3;
/** Most pack downloads in flight at once. */
export const FETCH_PARALLEL = 3;

class Cache implements RemoteCache {
  readonly describe: string;
  #b: Backend;
  #store: Store;
  #mapPath: string;

  #target: number;

  constructor(store: Store, b: Backend, packTarget: number) {
    this.#target = packTarget;
    this.#b = b;
    this.#store = store;
    this.describe = b.describe;
    this.#mapPath = `${store.root}/remote/${
      sha256Digest(new TextEncoder().encode(b.describe)).slice(7, 23)
    }.json`;
  }

  #load(): Mapping {
    try {
      const m = JSON.parse(Deno.readTextFileSync(this.#mapPath)) as Mapping;
      if (m.remote === this.describe && typeof m.packs === "object" && m.packs) return m;
    } catch { /* none yet, or unreadable: start over (it is only a hint) */ }
    return { remote: this.describe, packs: {} };
  }

  #save(add: Record<string, IndexPack>): void {
    const m = this.#load();
    for (const [d, p] of Object.entries(add)) {
      const old = m.packs[d];
      const objects = new Set([...(old?.objects ?? []), ...p.objects]);
      const manifests = new Set([...(old?.manifests ?? []), ...p.manifests]);
      m.packs[d] = { size: p.size, objects: [...objects], manifests: [...manifests] };
    }
    Deno.mkdirSync(`${this.#store.root}/remote`, { recursive: true });
    this.#store.writeAtomic(this.#mapPath, new TextEncoder().encode(JSON.stringify(m)));
  }

  /**
   * Another repository of the same registry that this store pushed `digest` to or fetched it
   * from (its mapping file says so), for a cross-repo mount; undefined when none.
   */
  #mountSource(digest: string): string | undefined {
    if (!(this.#b instanceof RegistryBackend)) return undefined;
    const host = this.#b.host;
    let names: string[];
    try {
      names = [...Deno.readDirSync(`${this.#store.root}/remote`)].map((e) => e.name);
    } catch {
      return undefined;
    }
    for (const n of names) {
      const path = `${this.#store.root}/remote/${n}`;
      if (!n.endsWith(".json") || path === this.#mapPath) continue;
      try {
        const m = JSON.parse(Deno.readTextFileSync(path)) as Mapping;
        const p = typeof m.remote === "string" ? parseRegistryRef(m.remote) : null;
        if (p && p.host === host && m.packs?.[digest]) return p.repo;
      } catch { /* not a mapping */ }
    }
    return undefined;
  }

  async lookup(step: string): Promise<StepIndex | null> {
    const man = await this.#b.getStep(step);
    if (man === null) return null;
    const ref = manifestIndex(man, step);
    return parseIndex(await this.#b.getBlob(ref.digest, MAX_INDEX_BYTES), step);
  }

  async fetch(ix: StepIndex): Promise<FetchStats> {
    const store = this.#store;
    const stats: FetchStats = { packs: 0, bytes: 0, objects: 0 };
    const learned: Record<string, IndexPack> = {};
    const todo: { p: IndexPack; want: Set<string> }[] = [];
    for (const p of ix.packs) {
      const want = new Set<string>();
      for (const id of p.objects) if (!store.has(id)) want.add(`o${id}`);
      for (const id of p.manifests) if (!store.has(id, "manifests")) want.add(`m${id}`);
      if (want.size) todo.push({ p, want });
    }
    // FETCH_PARALLEL downloads at once; each pack is verified whole before any of it is stored,
    // and the first failure stops the others from starting a new one.
    let next = 0;
    let failure: unknown = null;
    let writes = Promise.resolve();
    const worker = async () => {
      while (next < todo.length && failure === null) {
        const { p, want } = todo[next++];
        try {
          const bytes = await this.#b.getBlob(p.digest, MAX_PACK_BYTES);
          const entries = verifyPack(bytes, p, want); // throws before anything is stored
          learned[p.digest] = p; // verified: the mapping learns only what it saw
          if (failure !== null) return;
          writes = writes.then(() =>
            store.withLock("shared", () =>
              store.batch(() => {
                for (const e of entries) {
                  if (e.kind === "objects") store.putEncoded(e.id, e.stored);
                  else store.putManifest(decodeManifestChecked(e.decoded, e.id));
                }
              }))
          );
          await writes;
          stats.packs++;
          stats.bytes += bytes.length;
          stats.objects += entries.length;
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(FETCH_PARALLEL, todo.length) }, () => worker()),
    );
    if (failure !== null) throw failure;
    const missing = await store.withLock("shared", () => missingFromTree(store, ix.tree));
    if (missing.length) {
      throw new HdError(
        `Cannot use the result of ${ix.step.slice(0, 12)} from ${this.describe}: its index ` +
          `leaves out ${missing.length} object(s) of the tree (${missing[0].id.slice(0, 12)}…)`,
        "the remote entry is incomplete; the step runs here instead (push again to repair)",
      );
    }
    this.#save(learned);
    return stats;
  }

  async lookupVolume(env: string, name: string): Promise<StepIndex | null> {
    const what = `volume ${env}/${name}`;
    const man = await this.#b.getTagged(volumeTag(env, name), what);
    if (man === null) return null;
    const key = volumeKey(env, name);
    const ref = manifestIndex(man, key, VOLUME_ARTIFACT, what);
    return parseIndex(await this.#b.getBlob(ref.digest, MAX_INDEX_BYTES), key, what);
  }

  push(step: string, tree: string): Promise<PushStats> {
    return this.#push(step, tree, (man) => this.#b.putStep(step, man));
  }

  pushVolume(env: string, name: string, tree: string): Promise<PushStats> {
    const key = volumeKey(env, name);
    const what = `volume ${env}/${name}`;
    return this.#push(
      key,
      tree,
      (man) => this.#b.putTagged(volumeTag(env, name), man, `${what} (an OCI artifact)`),
      {
        artifact: VOLUME_ARTIFACT,
        annotations: { "dev.hd.volume": `${env}/${name}`, "dev.hd.tree": tree },
      },
    );
  }

  async #push(
    step: string,
    tree: string,
    putManifest: (man: Uint8Array) => Promise<void>,
    manOpts: { artifact?: string; annotations?: Record<string, string> } = {},
  ): Promise<PushStats> {
    const store = this.#store;
    const keys = await store.withLock("shared", () => collectTree(store, tree));
    const known = this.#load();
    const where = new Map<string, string>();
    for (const [d, p] of Object.entries(known.packs)) {
      for (const id of p.objects) where.set(`o${id}`, d);
      for (const id of p.manifests) where.set(`m${id}`, d);
    }
    // Known packs still on the remote (a registry gc may have dropped some): one HEAD each.
    const alive = new Map<string, boolean>();
    for (const k of keys) {
      const d = where.get(`${k.kind[0]}${k.id}`);
      if (d && !alive.has(d)) alive.set(d, false);
    }
    await Promise.all([...alive.keys()].map(async (d) => alive.set(d, await this.#b.hasBlob(d))));
    const reuse = new Map<string, IndexPack>();
    const fresh: Key[] = [];
    for (const k of keys) {
      const d = where.get(`${k.kind[0]}${k.id}`);
      if (d && alive.get(d)) {
        let p = reuse.get(d);
        if (!p) {
          reuse.set(d, p = { digest: d, size: known.packs[d].size, objects: [], manifests: [] });
        }
        (k.kind === "objects" ? p.objects : p.manifests).push(k.id);
      } else fresh.push(k);
    }
    const stats: PushStats = {
      step,
      uploaded: 0,
      skipped: reuse.size,
      mounted: 0,
      bytes: 0,
      metaBytes: 0,
      objects: 0,
    };
    const made: IndexPack[] = [];
    const inflight = new Set<Promise<void>>();
    let failure: unknown = null;
    for (const p of buildPacks(store, fresh, this.#target)) {
      const entry: IndexPack = {
        digest: p.digest,
        size: p.bytes.length,
        objects: p.keys.filter((k) => k.kind === "objects").map((k) => k.id),
        manifests: p.keys.filter((k) => k.kind === "manifests").map((k) => k.id),
      };
      made.push(entry);
      const job = (async () => {
        if (await this.#b.hasBlob(p.digest)) return void stats.skipped++;
        const how = await this.#b.putBlob(p.digest, p.bytes, this.#mountSource(p.digest));
        if (how === "mounted") return void stats.mounted++;
        stats.uploaded++;
        stats.bytes += p.bytes.length;
        stats.objects += p.keys.length;
      })().catch((e) => void (failure ??= e)).finally(() => inflight.delete(job));
      inflight.add(job);
      if (inflight.size >= PUSH_PARALLEL) await Promise.race(inflight);
      if (failure) break;
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    const packs = [...reuse.values(), ...made];
    const ix: StepIndex = { version: 1, step, tree, packs };
    const ixBytes = encodeIndex(ix);
    const ixDigest = sha256Digest(ixBytes);
    if (!await this.#b.hasBlob(ixDigest)) {
      await this.#b.putBlob(ixDigest, ixBytes);
      stats.metaBytes += ixBytes.length;
    }
    const man = stepManifest(
      step,
      tree,
      { digest: ixDigest, size: ixBytes.length },
      packs.map((p) => ({ digest: p.digest, size: p.size })),
      manOpts,
    );
    await putManifest(man);
    stats.metaBytes += man.length;
    this.#save(Object.fromEntries(made.map((p) => [p.digest, p])));
    return stats;
  }

  list(): Promise<string[]> {
    return this.#b.listSteps();
  }

  listVolumes(): Promise<string[]> {
    return this.#b.listVolumes();
  }
}

function decodeManifestChecked(bytes: Uint8Array, id: string) {
  const m = decodeManifest(bytes);
  if (manifestId(m) !== id) {
    throw new HdError(
      `Cannot use chunk manifest ${id.slice(0, 12)}: it re-encodes differently`,
      "",
    );
  }
  return m;
}

/** The remote cache at `ref` (`REGISTRY/REPO` or `s3://BUCKET/PREFIX`) for `store`. */
export function openRemoteCache(
  store: Store,
  ref: string,
  opts: { insecure?: string[]; packTarget?: number } = {},
): RemoteCache {
  return new Cache(store, openBackend(ref, opts), opts.packTarget ?? PACK_TARGET);
}

/**
 * Looks step `step` up and, on a hit, downloads it and calls `record(tree)` while a lease keeps
 * the downloaded objects from a gc (the caller sets `builds/<step>` there). Returns the tree and
 * what was fetched, or null on a miss.
 */
export async function restoreStep(
  store: Store,
  rc: RemoteCache,
  step: string,
  record: (tree: string) => Promise<void> | void,
): Promise<{ tree: string; stats: FetchStats } | null> {
  using _lease = store.lease(`remote cache ${step.slice(0, 12)}`);
  const ix = await rc.lookup(step);
  if (!ix) return null;
  const stats = await rc.fetch(ix);
  await record(ix.tree);
  return { tree: ix.tree, stats };
}
