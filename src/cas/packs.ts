/**
 * The set of pack files of a store (`packs/<64 hex>.pack`, format in pack.ts) and the pack being
 * filled by a batch: which pack holds a key and where, reading an entry, writing the batch's pack,
 * and the rewrites that gc and repair make. Split from the store so that the pack machinery
 * (open file handles, the index, the read window) has one owner and the store only asks "where
 * is this key?".
 *
 * Lookups are cheap until something needs more: {@link Packs.has} and {@link Packs.locate}
 * binary-search each pack's sorted on-disk index (a no-change re-scan checks only its root; a
 * mount reads only what is touched; a batch's flush appends its new pack's index, so a cold add
 * keeps 45 bytes per key and no object), nothing built per entry first; the full index map is
 * built only for a listing (gc, verify) or a malformed pack. Reads go through two windows that
 * grow as the kernel's readahead does ({@link readSize}: up to {@link READ_WINDOW} while reads go
 * on forward; after a jump as much as recent windows were used, down to {@link READ_MIN}), so
 * objects read in pack order (a file's chunks) cost one syscall per window and objects read all
 * over a pack a small read each. Nothing here verifies content: the store hashes whatever it
 * reads, loose or packed.
 *
 * @example
 * ```ts
 * import { Packs } from "./packs.ts";
 * import { objectKey } from "./key.ts";
 * import { encodeObject } from "./compress.ts";
 * import { blake3Hex } from "./hash.ts";
 * const root = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${root}/packs`);
 * const packs = new Packs(root);
 * const bytes = new TextEncoder().encode("packed");
 * const id = blake3Hex(bytes);
 * packs.startBatch();
 * packs.add("objects", id, encodeObject(bytes));
 * packs.flush(); // packs/<name>.pack, written atomically
 * packs.stopBatch();
 * const loc = packs.locate(objectKey("objects", id))!;
 * console.log(packs.has(objectKey("objects", id)), packs.where(loc), packs.read(loc).length);
 * ```
 * @module
 */
import { blake3Hex } from "./hash.ts";
import { decodeObject } from "./compress.ts";
import { tempPath, writeAtomic } from "./atomic.ts";
import { keyKind, type ObjectKey, objectKey, type ObjectKind } from "./key.ts";
import {
  INDEX_ENTRY,
  PackBuilder,
  type PackEntry,
  PackStream,
  readAt,
  readPackIndex,
  TRAILER,
} from "./pack.ts";

/**
 * The most bytes read from a pack at once: while objects are read in pack order (a file's chunks,
 * a checkout of the tree the pack was written from) their neighbours come along.
 */
export const READ_WINDOW = 512 << 10;

/**
 * The fewest bytes read from a pack at once after a jump: objects read all over a pack (a lazy
 * environment's files in name order from layers packed in tar order) cost a read of about this
 * size each, not of {@link READ_WINDOW} (measured: reading every file of examples/node-app's
 * image layers in name order copied 4,009 MiB of 512 KiB windows for 53 MB of files).
 */
export const READ_MIN = 32 << 10;

/** The trailer's magic (`HDPI`, as pack.ts writes it): a pack without it is malformed. */
const INDEX_MAGIC = [0x48, 0x44, 0x50, 0x49];

/** Where a key is stored in a pack. */
export interface PackLoc {
  /** The pack's name (64 hex, without `.pack`). */
  pack: string;
  /** Offset of the stored bytes in the pack file. */
  offset: number;
  /** Length of the stored bytes. */
  length: number;
}

/** One pack's sorted on-disk index, kept as read (45 bytes an entry), for binary search. */
interface RawIndex {
  name: string;
  index: Uint8Array;
  /** Where the pack's data ends (entries must lie before it). */
  end: number;
}

/** The id bytes of the key being looked up: decoded here, not allocated per lookup. */
const want = new Uint8Array(32);

/** Decodes the 64-hex id of `key` into {@link want}; false when it is not lowercase hex. */
function decodeKey(key: string): boolean {
  const start = key.charCodeAt(0) === 0x6d ? 1 : 0;
  if (key.length !== start + 64) return false;
  for (let i = 0; i < 32; i++) {
    const a = key.charCodeAt(start + 2 * i);
    const b = key.charCodeAt(start + 2 * i + 1);
    const hi = a >= 48 && a <= 57 ? a - 48 : a >= 97 && a <= 102 ? a - 87 : -1;
    const lo = b >= 48 && b <= 57 ? b - 48 : b >= 97 && b <= 102 ? b - 87 : -1;
    if (hi < 0 || lo < 0) return false;
    want[i] = (hi << 4) | lo;
  }
  return true;
}

/**
 * A pack's sorted on-disk index (count × 45 bytes) and where its data ends, or null when the
 * trailer is malformed.
 */
function rawIndexOf(f: Deno.FsFile): Omit<RawIndex, "name"> | null {
  const size = f.statSync().size;
  if (size < 4 + TRAILER) return null;
  const t = new Uint8Array(TRAILER);
  readAt(f, t, size - TRAILER);
  if (INDEX_MAGIC.some((b, i) => t[12 + i] !== b)) return null;
  const dv = new DataView(t.buffer);
  const off = Number(dv.getBigUint64(0));
  const count = dv.getUint32(8);
  if (off + count * INDEX_ENTRY + TRAILER !== size) return null;
  const index = new Uint8Array(count * INDEX_ENTRY);
  readAt(f, index, off);
  return { index, end: off };
}

/** What {@link readSize} knows of a read window: where it is and how many reads it served. */
export interface WindowState {
  pack: string;
  start: number;
  end: number;
  /** Objects served from it since it was filled, besides the one it was filled for. */
  hits: number;
}

/**
 * Where to read for an object of `len` bytes at `off` in `pack` (from `start`, `size` bytes), and
 * the jump size to keep, after the window `w` (the one the read goes on from, else the one it
 * replaces) and the current jump size `jump` (a pure function). Reading on forward from `w`
 * doubles it (up to {@link READ_WINDOW}). With `back` (a tree's nodes, which a batch writes
 * children first, siblings last to first: a walk from the root goes back through them), reading
 * back from it (the object lies just before `w`, or within READ_WINDOW of it once `w` has served
 * more than its first object) reads the stretch that ends where `w` starts, as much as reading on
 * would (what `w` holds is not read again). File chunks never read back: forward reads let the
 * kernel read ahead (measured: a cold read of every file in name order took ~5% longer when
 * chunks did). A jump reads `jump`
 * bytes from the object, which adapts to how much of a window gets used: doubled when the window
 * given up served two more objects or more (reads jump around a region a big window covers: a
 * directory's files packed in tar order), halved (down to {@link READ_MIN}) when it served none
 * (reads all over the pack). Never less than the object.
 *
 * @example
 * ```ts
 * import { READ_MIN, readSize } from "./packs.ts";
 * const w = { pack: "p", start: 4 * READ_MIN, end: 5 * READ_MIN, hits: 0 };
 * console.log(readSize(w, READ_MIN, "p", 5 * READ_MIN, 100)); // on: 2 * READ_MIN from there
 * console.log(readSize(w, READ_MIN, "p", 3 * READ_MIN, 100, true)); // back: 2 * READ_MIN up to w
 * console.log(readSize(w, READ_MIN, "p", 40 * READ_MIN, 100).size); // READ_MIN: a jump
 * ```
 */
export function readSize(
  w: WindowState,
  jump: number,
  pack: string,
  off: number,
  len: number,
  back = false,
): { start: number; size: number; jump: number } {
  if (goesOn(w, pack, off)) {
    const size = Math.min(READ_WINDOW, Math.max(jump, 2 * (w.end - w.start)));
    return { start: off, size: Math.max(len, size), jump };
  }
  if (back && goesBack(w, pack, off, len)) {
    const size = Math.min(READ_WINDOW, Math.max(jump, 2 * (w.end - w.start)));
    const end = Math.max(w.start, off + len); // (an object across w's start: through its end)
    const start = Math.max(0, Math.min(off, end - size));
    return { start, size: end - start, jump };
  }
  let j = jump;
  if (w.pack !== "") {
    if (w.hits >= 2) j = Math.min(READ_WINDOW, 2 * j);
    else if (w.hits === 0) j = Math.max(READ_MIN, j / 2);
  }
  return { start: off, size: Math.max(len, j), jump: j };
}

/**
 * True when an object of `len` bytes at `off` in `pack` starts before the window `w`: within
 * READ_MIN of its start, or within {@link READ_WINDOW} when the window has served an object
 * besides the one it was read for (a walk going back through the pack; reads all over it get no
 * bigger).
 */
function goesBack(w: WindowState, pack: string, off: number, len: number) {
  if (w.pack !== pack || off >= w.start || off + len > w.end) return false;
  return off + len >= w.start - READ_MIN || (w.hits >= 1 && off >= w.start - READ_WINDOW);
}

/** True when a read at `off` in `pack` goes on forward from the window `w` (within READ_MIN). */
function goesOn(w: WindowState, pack: string, off: number) {
  return w.pack === pack && off >= w.start && off <= w.end + READ_MIN;
}

function newWindow() {
  return { pack: "", start: 0, end: 0, hits: 0, buf: new Uint8Array(READ_WINDOW) };
}

/** The packs of the store at `root`, and the batch's pack in the making. */
export class Packs {
  /** The store directory. */
  readonly root: string;
  readonly #tmp: string;
  /** Full index: every key of every readable pack (the first pack listed wins). */
  #index: Map<ObjectKey, PackLoc> | null = null;
  /** Each pack's raw sorted index, for binary search before the full index is needed. */
  #raw: RawIndex[] | null = null;
  readonly #files = new Map<string, Deno.FsFile>();
  readonly #broken = new Map<string, string>();
  /**
   * Two read windows, the most recently used first: a walk of a tree alternates between its Dir
   * nodes (together at the pack's tail) and the files' chunks, and each keeps its own window.
   */
  readonly #windows = [newWindow(), newWindow()];
  /** How much a read after a jump reads ({@link readSize}). */
  #jump = READ_MIN;
  /** Reads made for {@link read} and the bytes they read (what {@link readStats} reports). */
  readonly #reads = { calls: 0, bytes: 0 };
  #batch: PackStream | null = null;

  /** `root` is the store directory (packs/ and tmp/ are under it). */
  constructor(root: string) {
    this.root = root;
    this.#tmp = `${root}/tmp`;
  }

  /** Path of a pack file. */
  path(name: string): string {
    return `${this.root}/packs/${name}.pack`;
  }

  /** `pack@offset`: how errors and `hd cas` name a packed entry. */
  where(loc: PackLoc): string {
    return `${this.path(loc.pack)}@${loc.offset}`;
  }

  #names(): string[] {
    try {
      return [...Deno.readDirSync(`${this.root}/packs`)]
        .filter((e) => e.isFile && e.name.endsWith(".pack")).map((e) => e.name.slice(0, -5));
    } catch {
      return []; // no packs yet
    }
  }

  #file(name: string): Deno.FsFile {
    let f = this.#files.get(name);
    if (!f) {
      f = Deno.openSync(this.path(name), { read: true });
      this.#files.set(name, f);
    }
    return f;
  }

  /**
   * True when a pack holds `key`. Until something needs the full index map (a listing, a malformed
   * pack), a lookup binary-searches each pack's sorted on-disk index instead of parsing every entry: a
   * scan that only checks a few ids (a no-change re-scan checks its root) stays cheap.
   */
  has(key: ObjectKey): boolean {
    return this.#find(key) !== undefined;
  }

  /**
   * Each pack's raw sorted index (read once), or null when a pack is malformed (the caller then
   * falls back to the full load, which records what is wrong).
   */
  #rawIndexes(): RawIndex[] | null {
    if (this.#raw) return this.#raw;
    const raw: RawIndex[] = [];
    for (const name of this.#names()) {
      try {
        const r = rawIndexOf(this.#file(name));
        if (!r) return null;
        raw.push({ name, ...r });
      } catch {
        return null;
      }
    }
    this.#raw = raw;
    return raw;
  }

  /**
   * Where `key` is packed: from the full index when it is loaded, else by binary search of the
   * raw indexes (the first pack listed wins, as in the full index). A server that reads a few
   * objects (a mount) never builds the map of every packed key.
   */
  #find(key: ObjectKey): PackLoc | undefined {
    if (this.#index) return this.#index.get(key);
    const raws = this.#rawIndexes();
    if (!raws) return this.#load().get(key);
    const kind = keyKind(key) === "manifests" ? 1 : 0;
    if (!decodeKey(key)) return undefined; // not a 64-hex id: no pack holds it
    const id = want;
    for (const { name, index, end } of raws) {
      // one binary search over the sorted entries (kind byte, then the id's bytes): nothing is
      // built per entry first (a fan-out table cost a mount server ~1.5 ms at start for a
      // 12k-object pack, more than the few lookups it then sped up)
      let lo = 0;
      let hi = index.length / INDEX_ENTRY;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const o = mid * INDEX_ENTRY;
        let c = (index[o] ? 1 : 0) - kind;
        for (let i = 0; c === 0 && i < 32; i++) c = index[o + 1 + i] - id[i];
        if (c === 0) {
          const dv = new DataView(index.buffer, index.byteOffset + o + 33, 12);
          const offset = Number(dv.getBigUint64(0));
          const length = dv.getUint32(8);
          // the same range check as the full load: a bad entry makes the pack "broken"
          if (offset < 4 || offset + length > end) return this.#load().get(key);
          return { pack: name, offset, length };
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    return undefined;
  }

  /** The full index, loaded on first use; `reload` adds packs that appeared since. */
  #load(reload = false): Map<ObjectKey, PackLoc> {
    if (this.#index && !reload) return this.#index;
    const idx = this.#index ?? new Map<ObjectKey, PackLoc>();
    const loaded = new Set([...idx.values()].map((l) => l.pack));
    for (const name of this.#names()) {
      if (loaded.has(name)) continue;
      try {
        const f = this.#file(name);
        for (const e of readPackIndex(f, f.statSync().size)) {
          const key = objectKey(e.kind, e.id);
          if (!idx.has(key)) idx.set(key, { pack: name, offset: e.offset, length: e.length });
        }
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // removed by a concurrent gc
        // A pack whose index is unreadable hides its objects (reads say "missing"); the rest
        // of the store keeps working and `hd cas verify` names the pack.
        this.#broken.set(name, (e as Error).message);
      }
    }
    this.#index = idx;
    return idx;
  }

  /** Where `key` is packed, or undefined; `reload` first looks for packs that appeared since. */
  locate(key: ObjectKey, reload = false): PackLoc | undefined {
    if (reload) {
      if (this.#index) return this.#load(true).get(key);
      this.#raw = null; // read the pack list again
    }
    return this.#find(key);
  }

  /** Every packed key (each once), after looking for new packs. */
  keys(): IterableIterator<ObjectKey> {
    return this.#load(true).keys();
  }

  /**
   * Reads an entry's stored bytes through the read window. The result may be a view of the
   * window ({@link sharesWindow}): decode or copy it before the next read. Throws NotFound when
   * the pack went (a gc rewrote or dropped it). `back`: the entry is a tree's node, read on a walk
   * that may go back through the pack ({@link readSize}).
   */
  read(loc: PackLoc, back = false): Uint8Array {
    const { pack, offset: off, length: len } = loc;
    const ws = this.#windows;
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i];
      if (w.pack === pack && off >= w.start && off + len <= w.end) {
        w.hits++;
        if (i > 0) [ws[0], ws[i]] = [w, ws[0]];
        return w.buf.subarray(off - w.start, off - w.start + len);
      }
    }
    if (len > READ_WINDOW) {
      const buf = new Uint8Array(len);
      readAt(this.#file(pack), buf, off);
      this.#reads.calls++;
      this.#reads.bytes += len;
      return buf;
    }
    // As the kernel's readahead: the window this read goes on from doubles (up to READ_WINDOW);
    // a walk going back through a tree's nodes refills it with the stretch before it; after a jump the
    // least recently used one is refilled with as much as windows got used lately (readSize).
    // Otherwise windows start at the object: reads that go forward on the pack file let the
    // kernel read ahead (windows around the object made fewer, smaller reads here, but a cold
    // walk took 30-50% longer).
    const on = goesOn(ws[0], pack, off) || (back && goesBack(ws[0], pack, off, len));
    const k = on ? 0 : ws.length - 1;
    const w = ws[k];
    if (k > 0) [ws[0], ws[k]] = [w, ws[0]];
    const next = readSize(w, this.#jump, pack, off, len, back);
    const { start, size } = next;
    this.#jump = next.jump;
    w.pack = "";
    const f = this.#file(pack);
    f.seekSync(start, Deno.SeekMode.Start);
    const need = off + len - start;
    let got = 0;
    while (got < need) {
      this.#reads.calls++;
      const n = f.readSync(w.buf.subarray(got, size));
      if (n === null || n === 0) throw new Error("Cannot read pack: unexpected end of file");
      got += n;
    }
    this.#reads.bytes += got;
    w.pack = pack;
    w.start = start;
    w.end = start + got;
    w.hits = 0;
    return w.buf.subarray(off - start, off - start + len);
  }

  /** The reads {@link read} made so far and the bytes they read (for tests and diagnostics). */
  readStats(): { calls: number; bytes: number } {
    return { ...this.#reads };
  }

  /** True when `bytes` shares memory with a read window (copy it to keep it). */
  sharesWindow(bytes: Uint8Array): boolean {
    return this.#windows.some((w) => bytes.buffer === w.buf.buffer);
  }

  /** Forgets the index and the window (after packs changed: a gc, a repair, a vanished pack). */
  forget(): void {
    this.#index = null;
    this.#raw = null;
    for (const w of this.#windows) w.pack = "";
  }

  /** {@link forget}, and closes the handle of a pack that went. */
  forgetPack(name: string): void {
    this.forget();
    this.#close(name);
  }

  /** {@link forget}, and closes every pack handle (another process's gc may have replaced them). */
  reset(): void {
    this.forget();
    for (const f of this.#files.values()) f.close();
    this.#files.clear();
  }

  #close(name: string): void {
    const f = this.#files.get(name);
    if (!f) return;
    this.#files.delete(name);
    try {
      f.close();
    } catch { /* already closed */ }
  }

  /** Every pack's entries, sorted by pack name (for verify and gc). */
  entries(): { pack: string; entries: PackEntry[] }[] {
    const out: { pack: string; entries: PackEntry[] }[] = [];
    for (const name of this.#names().sort()) {
      try {
        const f = this.#file(name);
        out.push({ pack: name, entries: readPackIndex(f, f.statSync().size) });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) this.#broken.set(name, (e as Error).message);
      }
    }
    return out;
  }

  /** Packs whose index could not be read, with the reason (their objects read as missing). */
  broken(): { path: string; why: string }[] {
    this.#load(true);
    return [...this.#broken].map(([name, why]) => ({ path: this.path(name), why }));
  }

  /** Size of a pack file in bytes. */
  fileSize(pack: string): number {
    return this.#file(pack).statSync().size;
  }

  /** Bytes on disk of every pack, and how many there are. */
  usage(): { packs: number; bytes: number } {
    const u = { packs: 0, bytes: 0 };
    try {
      for (const e of Deno.readDirSync(`${this.root}/packs`)) {
        if (!e.name.endsWith(".pack")) continue;
        u.packs++;
        u.bytes += Deno.lstatSync(`${this.root}/packs/${e.name}`).size;
      }
    } catch { /* none */ }
    return u;
  }

  /** True when a pack's copy of an entry decodes and hashes to its id. */
  verifies(e: PackEntry, pack: string): boolean {
    try {
      const buf = new Uint8Array(e.length);
      readAt(this.#file(pack), buf, e.offset);
      return blake3Hex(decodeObject(buf)) === e.id;
    } catch {
      return false;
    }
  }

  /**
   * Writes a new pack holding `live`, entries of `pack` copied byte for byte; returns its size.
   * The old pack stays until {@link remove}.
   */
  rewrite(pack: string, live: PackEntry[], opts: { fsync?: boolean } = {}): number {
    const f = this.#file(pack);
    const b = new PackBuilder();
    // in the old pack's order (not the index's id order): what was together stays together
    for (const e of [...live].sort((x, y) => x.offset - y.offset)) {
      const buf = new Uint8Array(e.length);
      readAt(f, buf, e.offset);
      b.add(e.kind, e.id, buf);
    }
    const { name, bytes } = b.finish();
    writeAtomic(this.#tmp, this.path(name), bytes, opts);
    return bytes.length;
  }

  /** Deletes a pack file (gc, repair: under the exclusive lock). */
  remove(pack: string): void {
    this.#close(pack);
    Deno.removeSync(this.path(pack));
  }

  // ---- the batch's pack ----

  /** True while a batch collects writes into a pack. */
  get batching(): boolean {
    return this.#batch !== null;
  }

  /** Starts collecting writes into a new pack. */
  startBatch(): void {
    this.#batch = new PackStream(tempPath(this.#tmp, "pack"));
  }

  /** Stops collecting (call {@link flush} first: what is pending is dropped). */
  stopBatch(): void {
    this.#batch?.abort();
    this.#batch = null;
  }

  /** Bytes collected in the batch's pack so far. */
  get pendingSize(): number {
    return this.#batch?.size ?? 0;
  }

  /** Objects collected in the batch's pack so far. */
  get pendingCount(): number {
    return this.#batch?.count ?? 0;
  }

  /** True when the batch's pack holds `key`. */
  pendingHas(key: ObjectKey): boolean {
    return this.#batch?.has(key) ?? false;
  }

  /** The stored bytes of a key pending in the batch's pack (a copy), or undefined. */
  pendingBytes(key: ObjectKey): Uint8Array | undefined {
    return this.#batch?.pending(key);
  }

  /**
   * Adds stored bytes to the batch's pack (call only while {@link batching}); `meta` objects (Dir
   * nodes, manifests) go together at the pack's tail (see {@link PackStream.add}).
   */
  add(kind: ObjectKind, id: string, stored: Uint8Array, meta = false): void {
    this.#batch!.add(kind, id, stored, meta);
  }

  /**
   * Writes the batch's pack (if it holds anything) atomically, adds it to the index and starts a
   * new one; returns the entries written.
   */
  flush(): PackEntry[] {
    const b = this.#batch;
    if (!b || b.count === 0) return [];
    const { name, entries } = b.finish((n) => this.path(n));
    if (this.#index) {
      // something (gc, a listing) already built the full map: keep it whole
      for (const e of entries) {
        const key = objectKey(e.kind, e.id);
        if (!this.#index.has(key)) {
          this.#index.set(key, { pack: name, offset: e.offset, length: e.length });
        }
      }
    } else if (this.#raw) {
      // Lookups stay binary searches of each pack's on-disk index (45 bytes an entry): no object
      // per key, so a cold add of 100k files holds no map of every key it wrote.
      const raw = rawIndexOf(this.#file(name));
      if (raw) this.#raw.push({ name, ...raw });
      else this.#raw = null; // read the pack list again on the next lookup
    }
    this.#batch = new PackStream(tempPath(this.#tmp, "pack"));
    return entries;
  }
}
