/**
 * The content-addressed store on disk.
 *
 * Layout (format version 1, see README "On-disk format"):
 * ```
 * $HD_HOME/
 *   FORMAT                 "hd-store 1"
 *   objects/<2 hex>/<62 hex>     chunks and DAG nodes: codec byte + payload
 *   manifests/<2 hex>/<62 hex>   large-file manifests: codec byte + payload
 *   packs/<64 hex>.pack    many objects and manifests in one file (see pack.ts), written by
 *                          batched adds; read exactly like loose objects
 *   refs/<name>            a root: one hex id and a newline
 *   tmp/                   temp files, renamed into place (same filesystem)
 *   leases/<id>.json       open leases: ids a writer stored but no ref reaches yet (lease.ts)
 *   KEY                    random per-store secret (mode 0600); the store id derives from it
 *   lock                   flock: writers hold it shared while writing, gc exclusive
 * ```
 * Every read re-hashes what it read and raises {@link CorruptObjectError} on a mismatch.
 *
 * @example
 * ```ts
 * import { Store } from "./store.ts";
 * const store = Store.open("/tmp/store", { create: true });
 * const id = store.putObject(new TextEncoder().encode("hello"));
 * store.getObject(id);
 * ```
 * @module
 */
import { blake3Hex, fromHex, isId } from "./hash.ts";
import { decodedSize, decodeObject, encodeObject } from "./compress.ts";
import { decodeManifest, encodeManifest, type Manifest } from "./manifest.ts";
import { CorruptObjectError, HdError, MissingObjectError } from "./errors.ts";
import {
  INDEX_ENTRY,
  PackBuilder,
  type PackEntry,
  readAt,
  readPackIndex,
  TRAILER,
} from "./pack.ts";
import { Lease } from "./lease.ts";
import { tempPath, writeAtomic } from "./fs.ts";
import { readIdentity, type StoreIdentity } from "./identity.ts";
import { StoreLock } from "./lock.ts";
import { Refs } from "./refs.ts";
import { keyId, keyKind, type ObjectKey, objectKey, type ObjectKind } from "./key.ts";

export type { ObjectKind } from "./key.ts";

/** Bytes read from a pack at once: neighbouring objects (a file's chunks) come along. */
export const READ_WINDOW = 512 << 10;

/** A batch's pack is written out when it reaches this size. */
export const PACK_TARGET = 32 << 20;

interface PackLoc {
  pack: string;
  offset: number;
  length: number;
}

/** What {@link Store.sweep} did (or, dry, would do). */
export interface SweepResult {
  /** Bytes freed on disk. */
  freed: number;
  /** Copies dropped because the same id is stored elsewhere. */
  duplicates: number;
  /** Packs deleted (nothing of them left). */
  packsRemoved: number;
  /** Packs rewritten without what they lost. */
  packsRewritten: number;
}

/** The store format this code reads and writes. */
export const STORE_FORMAT = "hd-store 1";

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Default store root: `$HD_HOME`, else `~/.hd`. */
export function defaultStoreRoot(): string {
  const env = Deno.env.get("HD_HOME");
  if (env) return env;
  const home = Deno.env.get("HOME") ?? "/root";
  return `${home}/.hd`;
}

/** A content-addressed store rooted at a directory. */
export class Store {
  /** Absolute path of the store directory. */
  readonly root: string;
  #known = new Set<ObjectKey>();
  #tmp: string;
  readonly #refs: Refs;
  readonly #lock: StoreLock;
  #packIndex: Map<ObjectKey, PackLoc> | null = null;
  #rawIndex: Uint8Array[] | null = null;
  #packFiles = new Map<string, Deno.FsFile>();
  #batch: PackBuilder | null = null;
  #batchDepth = 0;
  #looseDirs = new Map<string, Set<string>>();
  #window = { pack: "", start: 0, end: 0, buf: new Uint8Array(READ_WINDOW) };
  #brokenPacks = new Map<string, string>();
  #leases = new Set<Lease>();
  #identity: StoreIdentity | null = null;

  private constructor(root: string) {
    this.root = root;
    this.#tmp = `${root}/tmp`;
    this.#refs = new Refs(root);
    // A long-lived process (hd up, hd mount) must not trust what it remembers of the store
    // across another process's gc: start over when the gc generation moved.
    this.#lock = new StoreLock(root, () => {
      this.#known.clear();
      this.#packIndex = null;
      this.#rawIndex = null;
      for (const file of this.#packFiles.values()) file.close();
      this.#packFiles.clear();
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
    return `${this.root}/${kind}/${id.slice(0, 2)}/${id.slice(2)}`;
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
    if (this.#batch?.pending(key)) return true;
    if (this.#inPacks(key)) return true;
    if (this.#batch) {
      // In a batch, list each fan-out directory once instead of one failed lstat per new object.
      const dir = `${kind}/${id.slice(0, 2)}`;
      let set = this.#looseDirs.get(dir);
      if (!set) {
        set = new Set();
        try {
          for (const e of Deno.readDirSync(`${this.root}/${dir}`)) set.add(e.name);
        } catch { /* empty */ }
        this.#looseDirs.set(dir, set);
      }
      if (!set.has(id.slice(2))) return false;
      this.#known.add(key);
      return true;
    }
    try {
      Deno.lstatSync(this.path(kind, id));
      this.#known.add(key);
      return true;
    } catch {
      return false;
    }
  }

  // ---- packs ----

  /**
   * True when a pack holds `key`. Until something needs the full index map (a read, a flush), a
   * lookup binary-searches each pack's sorted on-disk index instead of parsing every entry: a
   * scan that only checks a few ids (a no-change re-scan checks its root) stays cheap.
   */
  #inPacks(key: ObjectKey): boolean {
    if (this.#packIndex) return this.#packIndex.has(key);
    if (!this.#rawIndex) {
      this.#rawIndex = [];
      let names: string[] = [];
      try {
        names = [...Deno.readDirSync(`${this.root}/packs`)]
          .filter((e) => e.isFile && e.name.endsWith(".pack")).map((e) => e.name.slice(0, -5));
      } catch { /* no packs yet */ }
      for (const name of names) {
        try {
          const f = this.#packFile(name);
          const size = f.statSync().size;
          const t = new Uint8Array(TRAILER);
          readAt(f, t, size - TRAILER);
          const dv = new DataView(t.buffer);
          const off = Number(dv.getBigUint64(0));
          const count = dv.getUint32(8);
          if (off + count * INDEX_ENTRY + TRAILER !== size) return this.#packs().has(key);
          const index = new Uint8Array(count * INDEX_ENTRY);
          readAt(f, index, off);
          this.#rawIndex.push(index);
        } catch {
          return this.#packs().has(key); // let the full load sort out what is wrong
        }
      }
    }
    const kind = keyKind(key) === "manifests" ? 1 : 0;
    const id = fromHex(keyId(key));
    for (const index of this.#rawIndex) {
      let lo = 0;
      let hi = index.length / INDEX_ENTRY;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const o = mid * INDEX_ENTRY;
        let c = index[o] - kind;
        for (let i = 0; c === 0 && i < 32; i++) c = index[o + 1 + i] - id[i];
        if (c === 0) return true;
        if (c < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    return false;
  }

  #packs(reload = false): Map<ObjectKey, PackLoc> {
    if (this.#packIndex && !reload) return this.#packIndex;
    const idx = this.#packIndex ?? new Map<ObjectKey, PackLoc>();
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(`${this.root}/packs`)]
        .filter((e) => e.isFile && e.name.endsWith(".pack")).map((e) => e.name.slice(0, -5));
    } catch { /* no packs yet */ }
    const loaded = new Set([...idx.values()].map((l) => l.pack));
    for (const name of names) {
      if (loaded.has(name)) continue;
      try {
        const f = this.#packFile(name);
        for (const e of readPackIndex(f, f.statSync().size)) {
          const key = objectKey(e.kind, e.id);
          if (!idx.has(key)) idx.set(key, { pack: name, offset: e.offset, length: e.length });
        }
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // removed by a concurrent gc
        // A pack whose index is unreadable hides its objects (reads say "missing"); the rest
        // of the store keeps working and `hd cas verify` names the pack.
        this.#brokenPacks.set(name, (e as Error).message);
      }
    }
    this.#packIndex = idx;
    return idx;
  }

  #packFile(name: string): Deno.FsFile {
    let f = this.#packFiles.get(name);
    if (!f) {
      f = Deno.openSync(this.packPath(name), { read: true });
      this.#packFiles.set(name, f);
    }
    return f;
  }

  /** Path of a pack file. */
  packPath(name: string): string {
    return `${this.root}/packs/${name}.pack`;
  }

  /** Every pack's entries (for verify and gc). */
  packEntries(): { pack: string; entries: PackEntry[] }[] {
    const out: { pack: string; entries: PackEntry[] }[] = [];
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(`${this.root}/packs`)]
        .filter((e) => e.isFile && e.name.endsWith(".pack")).map((e) => e.name.slice(0, -5)).sort();
    } catch { /* none */ }
    for (const name of names) {
      try {
        const f = this.#packFile(name);
        out.push({ pack: name, entries: readPackIndex(f, f.statSync().size) });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) this.#brokenPacks.set(name, (e as Error).message);
      }
    }
    return out;
  }

  /** Packs whose index could not be read, with the reason (their objects read as missing). */
  brokenPacks(): { path: string; why: string }[] {
    this.#packs(true);
    return [...this.#brokenPacks].map(([name, why]) => ({ path: this.packPath(name), why }));
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
    if (this.#batchDepth++ === 0) this.#batch = new PackBuilder();
  }

  #endBatch(ok: boolean): void {
    if (--this.#batchDepth > 0) return;
    try {
      // Objects already written stay valid even when the work failed: write them out.
      if (ok || this.#batch!.count > 0) this.flushPack();
    } finally {
      this.#batch = null;
      this.#looseDirs.clear();
    }
  }

  /** Writes the pending pack (if any) atomically and makes its objects visible. */
  flushPack(): void {
    const b = this.#batch;
    if (!b || b.count === 0) return;
    const { name, bytes, entries } = b.finish();
    this.writeAtomic(this.packPath(name), bytes);
    const idx = this.#packs();
    for (const e of entries) {
      const key = objectKey(e.kind, e.id);
      this.#known.add(key);
      if (!idx.has(key)) idx.set(key, { pack: name, offset: e.offset, length: e.length });
    }
    this.#batch = new PackBuilder();
  }

  #put(kind: ObjectKind, id: string, stored: Uint8Array): void {
    if (this.#leases.size) this.#note(kind, id);
    if (this.#batch) {
      this.#batch.add(kind, id, stored);
      if (this.#batch.size >= PACK_TARGET) this.flushPack();
      return;
    }
    this.writeAtomic(this.path(kind, id), stored);
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
    this.#put("objects", id, encodeObject(bytes, opts.compress ?? true));
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

  /** Reads an object and verifies its hash. */
  getObject(id: string): Uint8Array {
    return this.#read("objects", id);
  }

  #read(kind: ObjectKind, id: string): Uint8Array {
    if (!isId(id)) {
      throw new HdError(`Cannot read ${kind.slice(0, -1)} "${id}": not a 64-hex id`, "");
    }
    const [stored, p] = this.#readStored(kind, id);
    let bytes: Uint8Array;
    try {
      bytes = decodeObject(stored);
      // A raw object decodes to a view of the stored bytes, which may be the shared read window.
      if (bytes.buffer === this.#window.buf.buffer) bytes = bytes.slice();
    } catch (e) {
      throw new CorruptObjectError(id, p, (e as Error).message);
    }
    const actual = blake3Hex(bytes);
    if (actual !== id) throw new CorruptObjectError(id, p, `content hashes to ${actual}`);
    return bytes;
  }

  #readStored(kind: ObjectKind, id: string): [Uint8Array, string] {
    const key = objectKey(kind, id);
    const pending = this.#batch?.pending(key);
    if (pending) return [pending, "(pending pack)"];
    for (const reload of [false, true]) {
      const loc = this.#packs(reload).get(key);
      if (loc) {
        let buf: Uint8Array;
        try {
          buf = this.#readPacked(loc.pack, loc.offset, loc.length);
        } catch (e) {
          if (e instanceof Deno.errors.NotFound && !reload) {
            // The pack went (a gc rewrote or dropped it): forget the index and look again.
            this.#packIndex = null;
            this.#rawIndex = null;
            this.#packFiles.delete(loc.pack);
            continue;
          }
          throw new CorruptObjectError(
            id,
            `${this.packPath(loc.pack)}@${loc.offset}`,
            (e as Error).message,
          );
        }
        return [buf, `${this.packPath(loc.pack)}@${loc.offset}`];
      }
      const p = this.path(kind, id);
      try {
        return [Deno.readFileSync(p), p];
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    throw new MissingObjectError(id, kind === "objects" ? "object" : "manifest");
  }

  /**
   * Reads `len` bytes of a pack at `off` through a window of {@link READ_WINDOW} bytes, so that
   * objects read in pack order (a file's chunks, a tree's nodes) cost one syscall per window. The
   * result is a view of the window: decode or copy it before the next read.
   */
  #readPacked(pack: string, off: number, len: number): Uint8Array {
    const w = this.#window;
    if (w.pack === pack && off >= w.start && off + len <= w.end) {
      return w.buf.subarray(off - w.start, off - w.start + len);
    }
    if (len > READ_WINDOW) {
      const buf = new Uint8Array(len);
      readAt(this.#packFile(pack), buf, off);
      return buf;
    }
    w.pack = "";
    const f = this.#packFile(pack);
    f.seekSync(off, Deno.SeekMode.Start);
    let got = 0;
    while (got < len) {
      const n = f.readSync(w.buf.subarray(got));
      if (n === null || n === 0) throw new Error("Cannot read pack: unexpected end of file");
      got += n;
    }
    w.pack = pack;
    w.start = off;
    w.end = off + got;
    return w.buf.subarray(0, len);
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
    const loc = this.#packs().get(objectKey(kind, id));
    if (loc) return loc.length;
    try {
      return Deno.lstatSync(this.path(kind, id)).size;
    } catch {
      return 0;
    }
  }

  /** Where an object is stored: its loose path or `pack@offset` (null when absent). */
  location(kind: ObjectKind, id: string): string | null {
    const loc = this.#packs().get(objectKey(kind, id));
    if (loc) return `${this.packPath(loc.pack)}@${loc.offset}`;
    try {
      Deno.lstatSync(this.path(kind, id));
      return this.path(kind, id);
    } catch {
      return null;
    }
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
    const change = () => {
      if (!changed) (changed = true, opts.beforeChange?.());
    };
    const keyOf = objectKey;
    const r: SweepResult = { freed: 0, duplicates: 0, packsRemoved: 0, packsRewritten: 0 };
    const packs = this.packEntries();
    // The biggest packs own their ids; smaller packs holding the same ids are the duplicates.
    packs.sort((a, b) => b.entries.length - a.entries.length || (a.pack < b.pack ? -1 : 1));
    const copies = new Map<ObjectKey, { pack: string; e: PackEntry }[]>();
    for (const { pack, entries } of packs) {
      for (const e of entries) {
        const k = keyOf(e.kind, e.id);
        if (dead.has(k)) continue;
        const c = copies.get(k);
        if (c) c.push({ pack, e });
        else copies.set(k, [{ pack, e }]);
      }
    }
    const loose: { kind: ObjectKind; id: string; key: ObjectKey }[] = [];
    for (const kind of ["objects", "manifests"] as const) {
      for (const id of this.#listLoose(kind)) loose.push({ kind, id, key: keyOf(kind, id) });
    }
    // owner: the pack whose copy of a duplicated id is kept ("" = the loose copy).
    const owner = new Map<ObjectKey, string>();
    const looseKeys = new Set(loose.map((l) => l.key));
    for (const [k, c] of copies) {
      if (c.length === 1 && !looseKeys.has(k)) continue;
      const good = c.find((x) => this.#copyVerifies(x.e, x.pack));
      if (good) owner.set(k, good.pack);
      else if (looseKeys.has(k) && this.#looseVerifies(k)) owner.set(k, "");
      else owner.set(k, "*"); // no copy verifies: touch none of them
    }
    for (const l of loose) {
      const o = owner.get(l.key);
      const drop = dead.has(l.key) || (o !== undefined && o !== "" && o !== "*");
      if (!drop) continue;
      if (!dead.has(l.key)) r.duplicates++;
      const p = this.path(l.kind, l.id);
      try {
        r.freed += Deno.lstatSync(p).size;
        if (!opts.dryRun) (change(), Deno.removeSync(p));
      } catch { /* gone */ }
    }
    for (const { pack, entries } of packs) {
      const keep = (e: PackEntry) => {
        const k = keyOf(e.kind, e.id);
        if (dead.has(k)) return false;
        const o = owner.get(k);
        return o === undefined || o === "*" || o === pack;
      };
      const live = entries.filter(keep);
      if (live.length === entries.length) continue;
      for (const e of entries) if (!dead.has(keyOf(e.kind, e.id)) && !keep(e)) r.duplicates++;
      const f = this.#packFile(pack);
      const size = f.statSync().size;
      if (live.length > 0) {
        r.packsRewritten++;
        if (opts.dryRun) {
          r.freed += size - live.reduce((n, e) => n + e.length, 0);
          continue;
        }
        change();
        const b = new PackBuilder();
        for (const e of live) {
          const buf = new Uint8Array(e.length);
          readAt(f, buf, e.offset);
          b.add(e.kind, e.id, buf);
        }
        const { name, bytes } = b.finish();
        this.writeAtomic(this.packPath(name), bytes);
        r.freed -= bytes.length;
      } else r.packsRemoved++;
      r.freed += size;
      if (opts.dryRun) continue;
      change();
      f.close();
      this.#packFiles.delete(pack);
      Deno.removeSync(this.packPath(pack));
    }
    if (changed) {
      this.#packIndex = null;
      this.#rawIndex = null;
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
    this.writeAtomic(this.path(kind, id), encodeObject(bytes, true), { fsync: true });
    for (const { pack, entries } of this.packEntries()) {
      const bad = entries.filter((e) =>
        objectKey(e.kind, e.id) === key && !this.#copyVerifies(e, pack)
      );
      if (bad.length === 0) continue;
      const f = this.#packFile(pack);
      const live = entries.filter((e) => !bad.includes(e));
      if (live.length) {
        const b = new PackBuilder();
        for (const e of live) {
          const buf = new Uint8Array(e.length);
          readAt(f, buf, e.offset);
          b.add(e.kind, e.id, buf);
        }
        const { name, bytes: packBytes } = b.finish();
        this.writeAtomic(this.packPath(name), packBytes, { fsync: true });
      }
      f.close();
      this.#packFiles.delete(pack);
      Deno.removeSync(this.packPath(pack));
    }
    this.#packIndex = null;
    this.#rawIndex = null;
    this.#known.clear();
    this.#window.pack = "";
  }

  /** Removes `dead` (see {@link sweep}); returns the bytes freed. */
  removeObjects(dead: ReadonlySet<ObjectKey>): number {
    return this.sweep(dead).freed;
  }

  #looseVerifies(key: ObjectKey): boolean {
    const kind = keyKind(key);
    const id = keyId(key);
    try {
      return blake3Hex(decodeObject(Deno.readFileSync(this.path(kind, id)))) === id;
    } catch {
      return false;
    }
  }

  #copyVerifies(e: PackEntry, pack: string): boolean {
    try {
      const buf = new Uint8Array(e.length);
      readAt(this.#packFile(pack), buf, e.offset);
      return blake3Hex(decodeObject(buf)) === e.id;
    } catch {
      return false;
    }
  }

  *#listLoose(kind: ObjectKind): Generator<string> {
    for (const h of HEX2) {
      let entries: Iterable<Deno.DirEntry>;
      try {
        entries = Deno.readDirSync(`${this.root}/${kind}/${h}`);
      } catch {
        continue;
      }
      for (const e of entries) {
        if (e.isFile && e.name.length === 62) yield h + e.name;
      }
    }
  }

  /** Stores a manifest if absent; returns its id. */
  putManifest(m: Manifest): string {
    const enc = encodeManifest(m);
    const id = blake3Hex(enc);
    if (this.has(id, "manifests")) return id;
    this.#put("manifests", id, encodeObject(enc));
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
    for (const id of this.#listLoose(kind)) {
      seen.add(id);
      yield id;
    }
    for (const key of this.#packs(true).keys()) {
      if (keyKind(key) !== kind) continue;
      const id = keyId(key);
      if (!seen.has(id)) (seen.add(id), yield id);
    }
  }

  /** Bytes on disk: loose objects, loose manifests and packs. */
  usage(): { looseObjects: number; looseManifests: number; packs: number; bytes: number } {
    const u = { looseObjects: 0, looseManifests: 0, packs: 0, bytes: 0 };
    for (const kind of ["objects", "manifests"] as const) {
      for (const id of this.#listLoose(kind)) {
        kind === "objects" ? u.looseObjects++ : u.looseManifests++;
        try {
          u.bytes += Deno.lstatSync(this.path(kind, id)).size;
        } catch { /* gone */ }
      }
    }
    try {
      for (const e of Deno.readDirSync(`${this.root}/packs`)) {
        if (!e.name.endsWith(".pack")) continue;
        u.packs++;
        u.bytes += Deno.lstatSync(`${this.root}/packs/${e.name}`).size;
      }
    } catch { /* none */ }
    return u;
  }
}
