/**
 * The content-addressed store on disk: a façade over the modules that each hold one part of it.
 *
 * Layout (format version 1, see README "On-disk format"):
 * ```
 * $HD_HOME/
 *   FORMAT                 "hd-store 1"
 *   objects/<2 hex>/<62 hex>     chunks and DAG nodes: codec byte + payload      (loose.ts)
 *   manifests/<2 hex>/<62 hex>   large-file manifests: codec byte + payload      (loose.ts)
 *   packs/<64 hex>.pack    many objects and manifests in one file (pack.ts), written by
 *                          batched adds; read exactly like loose objects        (packs.ts)
 *   refs/<name>            a root: one hex id and a newline                      (refs.ts)
 *   tmp/                   temp files, renamed into place (same filesystem)      (atomic.ts)
 *   leases/<id>.json       open leases: ids a writer stored but no ref reaches yet (lease.ts)
 *   KEY                    random per-store secret (mode 0600); the store id derives from it
 *                                                                                (identity.ts)
 *   lock, GENERATION       flock: writers hold it shared while writing, gc exclusive; the gc
 *                          generation                                            (lock.ts)
 * ```
 * What the store itself adds: every read re-hashes what it read and raises
 * {@link CorruptObjectError} on a mismatch, wherever the bytes came from (the batch's pending
 * pack, a pack, a loose file); a batch sends writes to a pack instead of loose files; an open
 * lease records every id written or found; and the store remembers which keys (key.ts) it has
 * seen present, until a gc's generation says to forget.
 *
 * @example
 * ```ts
 * import { Store } from "./store.ts";
 * const store = Store.open(Deno.makeTempDirSync(), { create: true });
 * const id = store.putObject(new TextEncoder().encode("hello"));
 * store.getObject(id);
 * store.setRef("notes/hello", id);
 * ```
 * @module
 */
import { blake3Hex, isId } from "./hash.ts";
import { decodedSize, decodeObject, encodeObject } from "./compress.ts";
import { decodeManifest, encodeManifest, type Manifest } from "./manifest.ts";
import { CorruptObjectError, HdError, MissingObjectError } from "./errors.ts";
import { tempPath, writeAtomic } from "./atomic.ts";
import { readIdentity, type StoreIdentity } from "./identity.ts";
import { keyId, keyKind, type ObjectKey, objectKey, type ObjectKind, toObjectKey } from "./key.ts";
import { Lease } from "./lease.ts";
import { StoreLock } from "./lock.ts";
import { LooseObjects } from "./loose.ts";
import type { PackEntry } from "./pack.ts";
import { Packs } from "./packs.ts";
import { Refs } from "./refs.ts";
import { defaultStoreRoot } from "./root.ts";
import { type SweepResult, sweepStore } from "./sweep.ts";

export type { ObjectKind } from "./key.ts";
export { READ_WINDOW } from "./packs.ts";
export type { SweepResult } from "./sweep.ts";

/** A batch's pack is written out when it reaches this size. */
export const PACK_TARGET = 32 << 20;

/** The store format this code reads and writes. */
export const STORE_FORMAT = "hd-store 1";

export { defaultStoreRoot } from "./root.ts";

/** A content-addressed store rooted at a directory. */
export class Store {
  /** Absolute path of the store directory. */
  readonly root: string;
  readonly #tmp: string;
  readonly #loose: LooseObjects;
  readonly #packs: Packs;
  readonly #refs: Refs;
  readonly #lock: StoreLock;
  /** Keys seen present (loose or packed) by this process, until a gc's generation moves. */
  readonly #known = new Set<ObjectKey>();
  #batchDepth = 0;
  readonly #leases = new Set<Lease>();
  #identity: StoreIdentity | null = null;

  private constructor(root: string) {
    this.root = root;
    this.#tmp = `${root}/tmp`;
    this.#loose = new LooseObjects(root);
    this.#packs = new Packs(root);
    this.#refs = new Refs(root);
    // A long-lived process (hd up, hd mount) must not trust what it remembers of the store
    // across another process's gc: start over when the gc generation moved.
    this.#lock = new StoreLock(root, () => {
      this.#known.clear();
      this.#packs.reset();
    });
  }

  /**
   * Opens the store at `root`. With `create`, makes it (and its fan-out directories) if missing.
   * Throws when the directory is not a store of this format.
   */
  static open(root: string = defaultStoreRoot(), opts: { create?: boolean } = {}): Store {
    const create = opts.create ?? true;
    let format: string | null = null;
    try {
      format = Deno.readTextFileSync(`${root}/FORMAT`).trim();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (format === null) {
      if (!create) {
        throw new HdError(
          `Cannot open store ${root}: no store there`,
          "add something first (`hd cas add DIR`) or pass --store DIR",
        );
      }
      Store.#init(root);
      const s = new Store(root);
      s.identity(); // made with the store
      return s;
    } else if (format !== STORE_FORMAT) {
      throw new HdError(
        `Cannot open store ${root}: format "${format}" is not "${STORE_FORMAT}"`,
        "use the hd version that wrote it, or point --store at a new directory",
      );
    }
    return new Store(root);
  }

  static #init(root: string): void {
    try {
      Deno.mkdirSync(root, { recursive: true });
      // Fan-out directories (objects/<2 hex>) are made on first write into them.
      Deno.mkdirSync(`${root}/objects`, { recursive: true });
      Deno.mkdirSync(`${root}/manifests`, { recursive: true });
      Deno.mkdirSync(`${root}/refs`, { recursive: true });
      Deno.mkdirSync(`${root}/packs`, { recursive: true });
      Deno.mkdirSync(`${root}/tmp`, { recursive: true });
      const tmp = tempPath(`${root}/tmp`, "FORMAT");
      Deno.writeTextFileSync(tmp, STORE_FORMAT + "\n");
      Deno.renameSync(tmp, `${root}/FORMAT`);
    } catch (e) {
      throw new HdError(
        `Cannot create store ${root}: ${(e as Error).message}`,
        "check that the directory is writable, or set HD_HOME / --store to another place",
      );
    }
  }

  /** Path of a content file of the given kind. */
  path(kind: ObjectKind, id: string): string {
    return this.#loose.path(kind, id);
  }

  /** True when the store holds the object or manifest `id` (loose, packed or pending). */
  has(id: string, kind: ObjectKind = "objects"): boolean {
    if (this.#hasRaw(id, kind)) {
      // A dedup hit is a reference: an open lease must keep the object the writer now relies on.
      if (this.#leases.size) this.#note(kind, id);
      return true;
    }
    return false;
  }

  #hasRaw(id: string, kind: ObjectKind): boolean {
    const key = objectKey(kind, id);
    if (this.#known.has(key)) return true;
    if (this.#packs.pendingHas(key)) return true;
    if (this.#packs.has(key)) return true;
    // In a batch, list each fan-out directory once instead of one failed lstat per new object.
    if (this.#packs.batching ? this.#loose.listed(kind, id) : this.#loose.exists(kind, id)) {
      this.#known.add(key);
      return true;
    }
    return false;
  }

  // ---- packs ----

  /** Path of a pack file. */
  packPath(name: string): string {
    return this.#packs.path(name);
  }

  /** Every pack's entries (for verify and gc). */
  packEntries(): { pack: string; entries: PackEntry[] }[] {
    return this.#packs.entries();
  }

  /** Packs whose index could not be read, with the reason (their objects read as missing). */
  brokenPacks(): { path: string; why: string }[] {
    return this.#packs.broken();
  }

  /**
   * Runs `fn` with writes batched into pack files (flushed at {@link PACK_TARGET} and at the end).
   * Objects put during the batch are readable at once. Nested batches join the outer one.
   */
  batch<T>(fn: () => T): T {
    this.#beginBatch();
    let ok = false;
    try {
      const r = fn();
      ok = true;
      return r;
    } finally {
      this.#endBatch(ok);
    }
  }

  /** {@link batch} for async work. */
  async batchAsync<T>(fn: () => Promise<T>): Promise<T> {
    this.#beginBatch();
    let ok = false;
    try {
      const r = await fn();
      ok = true;
      return r;
    } finally {
      this.#endBatch(ok);
    }
  }

  #beginBatch(): void {
    if (this.#batchDepth++ === 0) this.#packs.startBatch();
  }

  #endBatch(ok: boolean): void {
    if (--this.#batchDepth > 0) return;
    try {
      // Objects already written stay valid even when the work failed: write them out.
      if (ok || this.#packs.pendingCount > 0) this.flushPack();
    } finally {
      this.#packs.stopBatch();
      this.#loose.forgetListings();
    }
  }

  /** Writes the pending pack (if any) atomically and makes its objects visible. */
  flushPack(): void {
    // The pack index now answers for these keys: copying them into #known too would hold every
    // key of a large add twice.
    this.#packs.flush();
  }

  #put(kind: ObjectKind, id: string, stored: Uint8Array, meta = false): void {
    if (this.#leases.size) this.#note(kind, id);
    if (this.#packs.batching) {
      this.#packs.add(kind, id, stored, meta);
      if (this.#packs.pendingSize >= PACK_TARGET) this.flushPack();
      return;
    }
    this.#loose.write(kind, id, stored);
    this.#known.add(objectKey(kind, id));
  }

  /** A fresh temp path inside the store (same filesystem, so rename is atomic). */
  tempPath(label = "obj"): string {
    return tempPath(this.#tmp, label);
  }

  /** Writes `data` to `dest` atomically: temp file, optional fsync, rename. */
  writeAtomic(dest: string, data: Uint8Array, opts: { fsync?: boolean } = {}): void {
    writeAtomic(this.#tmp, dest, data, opts);
  }

  /** Stores raw bytes as an object (chunk or node) if absent; returns its id. */
  putObject(bytes: Uint8Array, opts: { compress?: boolean; id?: string } = {}): string {
    const id = opts.id ?? blake3Hex(bytes);
    if (this.has(id)) return id;
    this.#put("objects", id, encodeObject(bytes, opts.compress ?? true), looksLikeNode(bytes));
    return id;
  }

  /**
   * Stores an object already encoded for disk (codec byte + payload) under `id`, if absent. The
   * caller vouches that `id` is BLAKE3 of the decoded bytes (the parallel ingest's workers hash and
   * encode; reads verify as always).
   */
  putEncoded(id: string, stored: Uint8Array): void {
    if (this.has(id)) return;
    this.#put("objects", id, stored);
  }

  /**
   * Reads an object and verifies its hash. `node`: it is a tree's node, read on a walk from the
   * root (its pack read may go back through the pack: Packs.read).
   */
  getObject(id: string, opts: { node?: boolean } = {}): Uint8Array {
    return this.#read("objects", id, opts.node ?? false);
  }

  #read(kind: ObjectKind, id: string, node = kind === "manifests"): Uint8Array {
    if (!isId(id)) {
      throw new HdError(`Cannot read ${kind.slice(0, -1)} "${id}": not a 64-hex id`, "");
    }
    const [stored, p] = this.#readStored(kind, id, node);
    let bytes: Uint8Array;
    try {
      bytes = decodeObject(stored);
      // A raw object decodes to a view of the stored bytes, which may be the shared read window.
      if (this.#packs.sharesWindow(bytes)) bytes = bytes.slice();
    } catch (e) {
      throw new CorruptObjectError(id, p, (e as Error).message);
    }
    const actual = blake3Hex(bytes);
    if (actual !== id) throw new CorruptObjectError(id, p, `content hashes to ${actual}`);
    return bytes;
  }

  /** The stored bytes of `id` (not verified) and where they are: pending, packed or loose. */
  #readStored(kind: ObjectKind, id: string, node = false): [Uint8Array, string] {
    const key = objectKey(kind, id);
    const pending = this.#packs.pendingBytes(key);
    if (pending) return [pending, "(pending pack)"];
    for (const reload of [false, true]) {
      const loc = this.#packs.locate(key, reload);
      if (loc) {
        let buf: Uint8Array;
        try {
          buf = this.#packs.read(loc, node);
        } catch (e) {
          if (e instanceof Deno.errors.NotFound && !reload) {
            // The pack went (a gc rewrote or dropped it): forget the index and look again.
            this.#packs.forgetPack(loc.pack);
            continue;
          }
          throw new CorruptObjectError(id, this.#packs.where(loc), (e as Error).message);
        }
        return [buf, this.#packs.where(loc)];
      }
      const stored = this.#loose.read(kind, id);
      if (stored) return [stored, this.#loose.path(kind, id)];
    }
    throw new MissingObjectError(id, kind === "objects" ? "object" : "manifest");
  }

  /**
   * The decoded size of an object without decoding or verifying it (from its codec byte and zstd
   * frame header), or null when unknown. For lazy readers that must locate an offset in a file.
   */
  objectSize(id: string): number | null {
    try {
      const [stored] = this.#readStored("objects", id);
      return decodedSize(stored.subarray(0, 19), stored.length);
    } catch {
      return null;
    }
  }

  /** Bytes an object takes on disk (0 when absent). */
  storedSize(kind: ObjectKind, id: string): number {
    const loc = this.#packs.locate(objectKey(kind, id));
    if (loc) return loc.length;
    return this.#loose.size(kind, id);
  }

  /** Where an object is stored: its loose path or `pack@offset` (null when absent). */
  location(kind: ObjectKind, id: string): string | null {
    const loc = this.#packs.locate(objectKey(kind, id));
    if (loc) return this.#packs.where(loc);
    return this.#loose.exists(kind, id) ? this.#loose.path(kind, id) : null;
  }

  /**
   * Removes objects and manifests (gc only, under the exclusive lock) and reclaims duplicates:
   * an id stored in more than one pack, or loose and packed (concurrent adds of the same files
   * each write a pack), keeps one copy that verifies. Loose files are deleted; packs holding
   * anything to drop are rewritten without it, or deleted when nothing of them is left. With
   * `dryRun`, only counts. Returns the bytes freed and what the duplicates cost.
   */
  sweep(
    dead: ReadonlySet<ObjectKey>,
    opts: { dryRun?: boolean; beforeChange?: () => void } = {},
  ): SweepResult {
    let changed = false;
    const r = sweepStore(this.#loose, this.#packs, dead, {
      dryRun: opts.dryRun,
      beforeChange: () => {
        changed = true;
        opts.beforeChange?.();
      },
    });
    if (changed) {
      this.#packs.forget();
      this.#known.clear();
    }
    return r;
  }

  /**
   * Replaces a damaged or missing object or manifest with `bytes` (its decoded content, which must
   * hash to `id`): writes a good loose copy and rewrites every pack whose copy does not verify
   * without it. Call under the exclusive lock (`hd cas verify --repair` does).
   */
  repair(kind: ObjectKind, id: string, bytes: Uint8Array): void {
    const actual = blake3Hex(bytes);
    if (actual !== id) {
      throw new HdError(`Cannot repair ${id}: the bytes offered hash to ${actual}`, "");
    }
    const key = objectKey(kind, id);
    this.#loose.write(kind, id, encodeObject(bytes, true), { fsync: true });
    for (const { pack, entries } of this.#packs.entries()) {
      const bad = entries.filter((e) =>
        objectKey(e.kind, e.id) === key && !this.#packs.verifies(e, pack)
      );
      if (bad.length === 0) continue;
      const live = entries.filter((e) => !bad.includes(e));
      if (live.length) this.#packs.rewrite(pack, live, { fsync: true });
      this.#packs.remove(pack);
    }
    this.#packs.forget();
    this.#known.clear();
  }

  /**
   * Removes `dead` (see {@link sweep}); returns the bytes freed. Takes keys as plain strings too
   * (checked by {@link toObjectKey}).
   */
  removeObjects(dead: ReadonlySet<string>): number {
    return this.sweep(new Set([...dead].map(toObjectKey))).freed;
  }

  /** Stores a manifest if absent; returns its id. */
  putManifest(m: Manifest): string {
    const enc = encodeManifest(m);
    const id = blake3Hex(enc);
    if (this.has(id, "manifests")) return id;
    this.#put("manifests", id, encodeObject(enc), true);
    return id;
  }

  /** Reads and verifies a manifest. */
  getManifest(id: string): Manifest {
    const bytes = this.#read("manifests", id);
    try {
      return decodeManifest(bytes);
    } catch (e) {
      throw new CorruptObjectError(id, this.path("manifests", id), (e as Error).message);
    }
  }

  /**
   * The gc generation: changes whenever a gc deletes anything, so caches that remember which
   * objects exist (the stat cache) know to start over.
   */
  generation(): string {
    return this.#lock.generation();
  }

  /** Starts a new gc generation (called by gc before it deletes). */
  bumpGeneration(): void {
    this.#lock.bumpGeneration();
  }

  /** Forgets which ids this process has seen (after a gc deleted some). */
  forgetKnown(): void {
    this.#known.clear();
  }

  // ---- refs (refs.ts) ----

  /** Points ref `name` at `id` (atomic, fsynced). */
  setRef(name: string, id: string): void {
    this.#refs.set(name, id);
  }

  /** The id a ref points at, or null. */
  getRef(name: string): string | null {
    return this.#refs.get(name);
  }

  /** Removes a ref; true when it existed. */
  deleteRef(name: string): boolean {
    return this.#refs.delete(name);
  }

  /** Every ref as [name, id], sorted by name. */
  listRefs(): [string, string][] {
    return this.#refs.list();
  }

  // ---- leases (lease.ts) ----

  /**
   * Opens a lease (see lease.ts): until it is released, every id this process stores or finds
   * in the store is kept by `hd cas gc` even when no ref reaches it yet. Take one before the
   * first write of a write-then-ref sequence and release it (`using`) after the ref is set.
   */
  lease(why: string): Lease {
    const dir = `${this.root}/leases`;
    Deno.mkdirSync(dir, { recursive: true });
    const l = new Lease(dir, why, (p, b) => this.writeAtomic(p, b), (x) => {
      this.#leases.delete(x);
      if (this.#leases.size === 0) this.#lock.letGo();
    });
    this.#leases.add(l);
    return l;
  }

  /** Leases open in this process. */
  get openLeases(): number {
    return this.#leases.size;
  }

  #note(kind: ObjectKind, id: string): void {
    // A leased write outside withLock: take the shared lock now (a gc waits for it) and hold it
    // until the lease is written out, so that no gc runs between the write and the lease file.
    this.#lock.hold();
    for (const l of this.#leases) l.keep(id, kind);
  }

  /** Writes out every open lease that changed (before the shared lock is given up). */
  flushLeases(): void {
    for (const l of this.#leases) l.flush();
    if (!this.#lock.inRun) this.#lock.letGo();
  }

  // ---- identity (identity.ts) ----

  /**
   * The store's identity: a random secret `key` made with the store (file KEY, mode 0600, created
   * atomically; old stores get one on first use) and the public `id` derived from it. Caches
   * derived from the store (the stat cache) record the id and authenticate themselves with the
   * key, so that a cache is never trusted by another store.
   */
  identity(): { id: string; key: Uint8Array } {
    return this.#identity ??= readIdentity(this.root);
  }

  // ---- locking (lock.ts) ----

  /**
   * Runs `fn` holding the store lock: shared for writers that add, exclusive for gc. Re-entrant
   * within one process for shared holders.
   */
  withLock<T>(mode: "shared" | "exclusive", fn: () => Promise<T> | T): Promise<T> {
    return this.#lock.run(mode, fn, {
      // Our own held shared lock is let go before an exclusive one: write the leases out first.
      beforeExclusive: () => {
        for (const l of this.#leases) l.flush();
      },
      // What this process stored under the lock is in its leases before a gc can start.
      beforeUnlock: () => this.flushLeases(),
    });
  }

  /** Lists every id stored under `kind`, loose and packed (each once). */
  *list(kind: ObjectKind): Generator<string> {
    const seen = new Set<string>();
    for (const id of this.#loose.list(kind)) {
      seen.add(id);
      yield id;
    }
    for (const key of this.#packs.keys()) {
      if (keyKind(key) !== kind) continue;
      const id = keyId(key);
      if (!seen.has(id)) (seen.add(id), yield id);
    }
  }

  /** Bytes on disk: loose objects, loose manifests and packs. */
  usage(): { looseObjects: number; looseManifests: number; packs: number; bytes: number } {
    const u = { looseObjects: 0, looseManifests: 0, packs: 0, bytes: 0 };
    for (const kind of ["objects", "manifests"] as const) {
      for (const id of this.#loose.list(kind)) {
        kind === "objects" ? u.looseObjects++ : u.looseManifests++;
        u.bytes += this.#loose.size(kind, id);
      }
    }
    const p = this.#packs.usage();
    u.packs = p.packs;
    u.bytes += p.bytes;
    return u;
  }
}

/**
 * True when `bytes` start like an encoded hd node (`hd`, version 1, kind 1–5; the format is in
 * src/dag/node.ts, which this layer cannot import). Used only for placement: a batch's pack keeps
 * nodes together at its tail (pack.ts), so a chunk that happens to start the same way costs
 * nothing but its place.
 */
export function looksLikeNode(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x68 && bytes[1] === 0x64 && bytes[2] === 1 &&
    bytes[3] >= 1 && bytes[3] <= 5;
}
