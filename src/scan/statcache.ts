/**
 * The stat cache: path → (size, mtime, ctime, inode, mode) → file content, so that scanning an
 * unchanged tree reads no file contents. Saved atomically as JSON beside the state it serves.
 *
 * Entries whose mtime is within {@link RACY_MS} of the moment the cache was saved are not trusted
 * on the next scan (git's "racily clean" rule): a write in the same clock tick as the save would
 * otherwise go unnoticed. The cache also records the store's gc generation: after a gc the cache
 * is dropped, since the objects it points at may be gone.
 *
 * Rows recorded during a scan are not kept as objects: each is appended as its JSON text to a
 * log of 1 MiB blocks, which the save writes as it is (a cold add of 100k files keeps ~15 MB of
 * bytes outside the JS heap, not 100k strings in a map).
 *
 * The file is untrusted input (it lives in the project, may be copied, edited, truncated):
 * - it records the id of the store it was made against (`Store.identity`), and a cache of
 *   another store is ignored — every fresh store has gc generation 0, so the generation alone
 *   cannot tell two stores apart;
 * - it carries a MAC, BLAKE3(store key ‖ body), with the store's secret key: a flipped digit, an id
 *   swapped for another, or a file written for another store fails it and the cache loads empty;
 * - rows are schema-checked when used; a malformed row is a miss;
 * - the ingest still checks that every id it reuses from the cache is in the store (scan/ingest.ts).
 * Any failure means a re-scan, never an error.
 *
 * @example
 * ```ts
 * import { StatCache } from "./statcache.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const cache = StatCache.load(".hd/statcache.json", store);
 * ```
 * @module
 */
import { blake3Hex, blake3Pieces, isId } from "../cas/hash.ts";
import type { Store } from "../cas/store.ts";
import { readStateFile, refuseStateLink } from "../sys/fs.ts";
import type { FileNode } from "../dag/node.ts";

/** The largest stat cache read (a few hundred bytes a file: millions of files). */
const STAT_CACHE_MAX = 1 << 30;

/** Entries modified this close to the save time are re-read on the next scan. */
export const RACY_MS = 1000;

const VERSION = 3;

/** What binds a cache to one store: its id, secret key and gc generation. */
export interface CacheBinding {
  storeId: string;
  key: Uint8Array;
  generation: string;
}

function bindingOf(store: Store): CacheBinding {
  const { id, key } = store.identity();
  return { storeId: id, key, generation: store.generation() };
}

/** BLAKE3(key ‖ body): BLAKE3 has no length extension, so a key prefix makes a MAC. */
function mac(key: Uint8Array, body: Uint8Array): string {
  const buf = new Uint8Array(key.length + body.length);
  buf.set(key);
  buf.set(body, key.length);
  return blake3Hex(buf);
}

const MAC_PREFIX = '{"mac":"';
/** Bytes before the body the MAC covers: `{"mac":"<64 hex>",`. */
const MAC_END = 74;

/** A growing byte buffer with `reserve` bytes kept free in front for the MAC head. */
class ByteSink {
  #buf: Uint8Array;
  #len: number;
  readonly #reserve: number;
  readonly #enc = new TextEncoder();

  constructor(reserve: number, capacity = 1 << 16) {
    this.#buf = new Uint8Array(Math.max(capacity, reserve + 1));
    this.#len = this.#reserve = reserve;
  }

  push(s: string): void {
    const need = this.#len + s.length * 3;
    if (need > this.#buf.length) {
      const b = new Uint8Array(Math.max(need, this.#buf.length * 2));
      b.set(this.#buf.subarray(0, this.#len));
      this.#buf = b;
    }
    this.#len += this.#enc.encodeInto(s, this.#buf.subarray(this.#len)).written;
  }

  pushBytes(b: Uint8Array): void {
    const need = this.#len + b.length;
    if (need > this.#buf.length) {
      const nb = new Uint8Array(Math.max(need, this.#buf.length * 2));
      nb.set(this.#buf.subarray(0, this.#len));
      this.#buf = nb;
    }
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** The bytes pushed so far, with the reserved space in front (a view). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /** The whole file: `{"mac":"<MAC of the body>",` followed by the body pushed so far. */
  seal(key: Uint8Array): Uint8Array {
    const body = this.#buf.subarray(this.#reserve, this.#len);
    // BLAKE3(key ‖ body) without copying the body: the key goes in the reserved space first.
    const m = key.length <= this.#reserve
      ? (this.#buf.set(key, this.#reserve - key.length),
        blake3Hex(this.#buf.subarray(this.#reserve - key.length, this.#len)))
      : mac(key, body);
    const head = new TextEncoder().encode(`${MAC_PREFIX}${m}",`);
    if (head.length !== this.#reserve) throw new Error("Cannot save the stat cache: bad MAC head");
    this.#buf.set(head);
    return this.#buf.subarray(0, this.#len);
  }
}

/** Full blocks a {@link TextLog} keeps in memory before it writes them to its spill file. */
const SPILL_BLOCKS = 4;

/** Closes a dropped log's spill file (a long-running process may drop a cache unsaved). */
const spillFiles = new FinalizationRegistry<Deno.FsFile>((f) => {
  try {
    f.close();
  } catch { /* closed */ }
});

/**
 * Append-only UTF-8 text in 1 MiB blocks: the rows a scan records, kept as the bytes the save
 * writes (no object per file). With a spill directory, full blocks beyond {@link SPILL_BLOCKS}
 * go to an unlinked temp file there: a 100k-file cold add keeps ~4 MiB of rows in memory, not
 * ~15 (they are read back, a block at a time, by the save). If the file cannot be made or
 * written, the rows stay in memory.
 */
class TextLog {
  #blocks: Uint8Array[] = [];
  #len = 0;
  readonly #enc = new TextEncoder();
  #spillDir: (() => string | null) | null;
  #spill: Deno.FsFile | null = null;
  /** Bytes of the spill file that hold rows (anything after is a failed write's remains). */
  #spilled = 0;
  /** Entries appended. */
  count = 0;
  /** True once a save wrote these entries (they now belong to the loaded rows). */
  saved = false;

  /** `spillDir` gives a fresh temp path (in the store's tmp/), or null to keep all in memory. */
  constructor(spillDir: (() => string | null) | null = null) {
    this.#spillDir = spillDir;
  }

  append(s: string): void {
    let b = this.#blocks.at(-1);
    if (!b || b.length - this.#len < s.length * 3) {
      if (b) this.#blocks[this.#blocks.length - 1] = b.subarray(0, this.#len);
      if (this.#blocks.length >= SPILL_BLOCKS) this.#spillBlocks();
      b = new Uint8Array(Math.max(1 << 20, s.length * 3));
      this.#blocks.push(b);
      this.#len = 0;
    }
    this.#len += this.#enc.encodeInto(s, b.subarray(this.#len)).written;
    this.count++;
  }

  /** Moves every (full) block to the spill file; on any failure stops spilling. */
  #spillBlocks(): void {
    if (!this.#spillDir) return;
    try {
      if (!this.#spill) {
        const path = this.#spillDir();
        if (path === null) return void (this.#spillDir = null);
        this.#spill = Deno.openSync(path, {
          read: true,
          write: true,
          createNew: true,
          mode: 0o600,
        });
        spillFiles.register(this, this.#spill, this);
        Deno.removeSync(path); // unlinked: gone with the process, whatever happens
      }
      this.#spill.seekSync(this.#spilled, Deno.SeekMode.Start);
      while (this.#blocks.length) {
        const b = this.#blocks[0];
        for (let o = 0; o < b.length;) o += this.#spill.writeSync(b.subarray(o));
        this.#spilled += b.length;
        this.#blocks.shift();
      }
    } catch {
      this.#spillDir = null; // (what is spilled stays valid: #spilled counts whole blocks only)
    }
  }

  /** Bytes appended. */
  get byteLength(): number {
    let n = this.#spilled + this.#len;
    for (let i = 0; i < this.#blocks.length - 1; i++) n += this.#blocks[i].length;
    return n;
  }

  /**
   * The bytes appended, block by block. A spilled block is read into one reused buffer: use each
   * before taking the next.
   */
  *blocks(): Generator<Uint8Array> {
    if (this.#spill && this.#spilled > 0) {
      const buf = new Uint8Array(1 << 20);
      for (let at = 0; at < this.#spilled;) {
        const want = Math.min(buf.length, this.#spilled - at);
        this.#spill.seekSync(at, Deno.SeekMode.Start);
        let got = 0;
        while (got < want) {
          const n = this.#spill.readSync(buf.subarray(got, want));
          if (n === null || n === 0) {
            throw new Error("Cannot read the stat cache's spilled rows: the temp file is short");
          }
          got += n;
        }
        at += want;
        yield buf.subarray(0, want);
      }
    }
    for (let i = 0; i < this.#blocks.length; i++) {
      const b = this.#blocks[i];
      yield i === this.#blocks.length - 1 ? b.subarray(0, this.#len) : b;
    }
  }

  /** The whole text. */
  text(): string {
    const d = new TextDecoder();
    let s = "";
    for (const b of this.blocks()) s += d.decode(b, { stream: true });
    return s + d.decode();
  }

  /** Closes the spill file (the log is dropped). */
  close(): void {
    if (!this.#spill) return;
    spillFiles.unregister(this);
    try {
      this.#spill.close();
    } catch { /* closed */ }
    this.#spill = null;
  }
}

function validRow(r: unknown): r is Row {
  if (!Array.isArray(r) || r.length !== 6) return false;
  for (let i = 0; i < 5; i++) if (typeof r[i] !== "number") return false;
  const c = r[5];
  if (typeof c === "string") return isId(c);
  if (Array.isArray(c)) return c.every((x) => typeof x === "string" && isId(x));
  return typeof c === "object" && c !== null && typeof c.target === "string";
}

function validDirRow(r: unknown): r is DirRow {
  return Array.isArray(r) && r.length === 3 && typeof r[0] === "string" && isId(r[0]) &&
    typeof r[1] === "number" && typeof r[2] === "number";
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The stat signature of a file. */
export interface StatSig {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  mode: number;
}

type Row = [number, number, number, number, number, string[] | string | { target: string }];
type DirRow = [string, number, number];

function content(f: FileNode): Row[5] {
  if (f.target !== undefined) return { target: f.target };
  return f.manifest ?? f.chunks ?? [];
}

/**
 * A row as JSON text. JSON.stringify makes one flat string; a template literal would make a tree
 * of string pieces (a cons string per `${}`), which costs more memory per row than it saves time.
 */
function rowText(sig: StatSig, f: FileNode): string {
  return JSON.stringify([sig.size, sig.mtime, sig.ctime, sig.ino, sig.mode, content(f)]);
}

/** A loaded stat cache. */
export class StatCache {
  #rows: Map<string, Row>;
  /** Rows kept for the next save: hits (the loaded row itself) and, after {@link #unlog}, more. */
  #next = new Map<string, Row>();
  /** A fresh temp path in the store's tmp/ for the log's spill file (null: none). */
  #spillPath: (() => string) | null = null;
  /** Rows recorded in this scan, as JSON text (see {@link TextLog}): no object per file. */
  #log = this.#newLog();
  /** Directory path → [Dir id, entry count, mode] from the last scan. */
  #dirs: Map<string, DirRow>;
  #nextDirs = new Map<string, DirRow>();
  #savedAt: number;
  #binding: CacheBinding;
  /** The directory this cache describes (recorded, for `hd cas verify --repair`). */
  dir: string | null = null;
  /** Number of lookups answered from the cache in this scan. */
  hits = 0;
  /** Number of lookups that needed the file's content. */
  misses = 0;
  /** Why the file on disk was not used (null when it was, or there was none). */
  rejected: string | null = null;

  private constructor(
    rows: Map<string, unknown>,
    savedAt: number,
    binding: CacheBinding,
    dirs: Map<string, unknown> = new Map(),
  ) {
    this.#rows = rows as Map<string, Row>;
    this.#dirs = dirs as Map<string, DirRow>;
    this.#savedAt = savedAt;
    this.#binding = binding;
  }

  #newLog(): TextLog {
    return new TextLog(() => this.#spillPath?.() ?? null);
  }

  /** The log's spill files go to `store`'s tmp/. */
  #spillTo(store: Store): this {
    this.#spillPath = () => store.tempPath("stat-rows");
    return this;
  }

  /** An empty cache for `store`. */
  static empty(store: Store): StatCache {
    return new StatCache(new Map(), 0, bindingOf(store)).#spillTo(store);
  }

  /**
   * Loads the cache at `path` for `store`. A missing, unreadable, malformed, outdated or foreign
   * cache (another store's, or one whose MAC fails) loads empty; `rejected` says why.
   */
  static load(path: string, store: Store): StatCache {
    const binding = bindingOf(store);
    const empty = (why: string | null) => {
      const c = new StatCache(new Map(), 0, binding).#spillTo(store);
      c.rejected = why;
      return c;
    };
    let bytes: Uint8Array | null;
    try {
      // a project's `.hd/statcache.json`: a cloned repository may ship one linked to /dev/zero
      // (read without end) or made a FIFO (never answers); a regular file of hd's own, bounded
      bytes = readStateFile(path, STAT_CACHE_MAX);
    } catch (e) {
      return empty((e as Error).message);
    }
    if (bytes === null) return empty(null);
    // `{"mac":"<64 hex>",` + the rest of the body; the MAC covers the rest.
    const head = new TextDecoder().decode(bytes.subarray(0, MAC_END));
    const m = head.startsWith(MAC_PREFIX) ? head.slice(8, 72) : "";
    if (!/^[0-9a-f]{64}$/.test(m) || head.slice(72) !== '",') return empty("no MAC");
    if (mac(binding.key, bytes.subarray(MAC_END)) !== m) {
      return empty("MAC mismatch (damaged, or another store's)");
    }
    let j: unknown;
    try {
      j = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return empty("not JSON");
    }
    if (!isRecord(j) || j.version !== VERSION) return empty("another version");
    if (j.store !== binding.storeId) return empty("made against another store");
    if (j.generation !== binding.generation) return empty("made before a gc");
    if (typeof j.savedAt !== "number" || !isRecord(j.rows) || !isRecord(j.dirs)) {
      return empty("malformed");
    }
    const c = new StatCache(
      new Map(Object.entries(j.rows)),
      j.savedAt,
      binding,
      new Map(Object.entries(j.dirs)),
    ).#spillTo(store);
    if (typeof j.dir === "string") c.dir = j.dir;
    return c;
  }

  /** The cached File node for `rel` when its stat signature is unchanged, else null. */
  lookup(rel: string, sig: StatSig): FileNode | null {
    if (this.#log.count && this.#savedAt > 0 && this.#log.saved) this.#unlog();
    const r = this.#rows.get(rel);
    if (
      r && validRow(r) && r[0] === sig.size && r[1] === sig.mtime && r[2] === sig.ctime &&
      r[3] === sig.ino &&
      r[4] === sig.mode && sig.mtime < this.#savedAt - RACY_MS
    ) {
      this.hits++;
      this.#next.set(rel, r);
      const f: FileNode = { type: "file", mode: sig.mode, size: sig.size };
      const c = r[5];
      if (typeof c === "string") f.manifest = c;
      else if (Array.isArray(c)) f.chunks = c;
      else f.target = c.target;
      return f;
    }
    this.misses++;
    return null;
  }

  /**
   * The Dir id recorded for directory `rel` when it had `count` entries and this mode. The caller
   * may reuse it only when every entry below was answered by this cache (nothing changed).
   */
  lookupDir(rel: string, count: number, mode: number): string | null {
    const r = this.#dirs.get(rel);
    if (r && validDirRow(r) && r[1] === count && r[2] === mode) {
      this.#nextDirs.set(rel, r);
      return r[0];
    }
    return null;
  }

  /** Records the Dir id of directory `rel` for the next scan. */
  recordDir(rel: string, id: string, count: number, mode: number): void {
    const r = this.#dirs.get(rel);
    if (!r || r[0] !== id || r[1] !== count || r[2] !== mode) this.dirsChanged = true;
    this.#nextDirs.set(rel, [id, count, mode]);
  }

  /** True when a directory's recorded id changed in this scan (the cache must be saved). */
  dirsChanged = false;

  /** Records the content of `rel` for the next scan. */
  record(rel: string, sig: StatSig, f: FileNode): void {
    // One flat string per file, not an array of boxed numbers and an array of id strings: a cold
    // add of 100k files keeps ~100k of these until the save writes them as they are.
    if (this.#log.saved) this.#unlog();
    this.#log.append(`,${JSON.stringify(rel)}:${rowText(sig, f)}`);
    this.#dropAncestors(rel);
  }

  /** A changed path invalidates the recorded ids of every directory above it. */
  #dropAncestors(rel: string): void {
    let i = rel.lastIndexOf("/");
    while (true) {
      const dir = i < 0 ? "" : rel.slice(0, i);
      if (this.#dirs.delete(dir) || this.#nextDirs.delete(dir)) this.dirsChanged = true;
      if (i < 0) break;
      i = rel.lastIndexOf("/", i - 1);
    }
  }

  /** Forgets `rel` (deleted file). */
  forget(rel: string): void {
    this.#unlog();
    this.#next.delete(rel);
    this.#rows.delete(rel);
    this.#dropAncestors(rel);
  }

  /**
   * Moves the recorded rows of the log into the maps (parsed back): before a save they go to
   * {@link #next} (so that a {@link forget} can drop one), after it to {@link #rows} (so that the
   * next scan of a long-running process can use them). Rare: a one-shot `hd cas add` never does it.
   */
  #unlog(): void {
    if (this.#log.count === 0) return;
    const rows = JSON.parse(`{${this.#log.text().slice(1)}}`) as Record<string, Row>;
    const into = this.#log.saved ? this.#rows : this.#next;
    for (const [k, v] of Object.entries(rows)) into.set(k, v);
    this.#log.close();
    this.#log = this.#newLog();
  }

  /**
   * Writes the entries seen since load (plus, with `keepOld`, the older ones) atomically.
   * Returns false (and writes nothing) when the directory cannot be written.
   */
  save(path: string, keepOld = false): boolean {
    if (
      !keepOld && this.misses === 0 && !this.dirsChanged && this.#log.count === 0 &&
      this.#next.size === this.#rows.size &&
      this.#nextDirs.size === this.#dirs.size && this.#savedAt > 0
    ) {
      this.#next = new Map(); // every entry was a hit: the file on disk already says this
      this.#nextDirs = new Map();
      return true;
    }
    // Written straight into one byte buffer, row by row: no object of every row, no JSON string of
    // the whole cache, no second copy to prepend the MAC (a 100k-file tree's cache is ~15 MB).
    const savedAt = Date.now();
    // With an incremental hash, the rows logged in this scan are hashed and written as they are
    // (the buffer holds the rest); without one, all goes into one buffer sized up front.
    const pieces = blake3Pieces();
    const logBytes = this.#log.saved ? 0 : this.#log.byteLength;
    let out = new ByteSink(MAC_END, (pieces ? 0 : logBytes) + (1 << 16));
    // the file's pieces in order; "log" stands for the logged rows, read (from memory or the spill
    // file) once to hash them and once to write them
    const parts: (Uint8Array | "log")[] = [];
    let logSkip = 0;
    out.push(
      `"version":${VERSION},"store":${JSON.stringify(this.#binding.storeId)},"generation":${
        JSON.stringify(this.#binding.generation)
      },"savedAt":${savedAt},"dir":${JSON.stringify(this.dir)},"rows":{`,
    );
    let first = true;
    if (this.#log.saved) this.#unlog(); // (a second save without a scan between)
    const put = (k: string, v: unknown) => {
      out.push(`${first ? "" : ","}${JSON.stringify(k)}:${JSON.stringify(v)}`);
      first = false;
    };
    for (const [k, v] of this.#next) put(k, v);
    if (keepOld) { for (const [k, v] of this.#rows) if (!this.#next.has(k)) put(k, v); }
    // The rows recorded in this scan, as they were logged (each `,"rel":row`): last, since a key
    // written twice means its last value to JSON.parse.
    if (this.#log.count) {
      let skip = logSkip = first ? 1 : 0;
      if (pieces) {
        parts.push(out.bytes(), "log");
        out = new ByteSink(0);
      } else for (const b of this.#log.blocks()) (out.pushBytes(b.subarray(skip)), skip = 0);
    }
    out.push('},"dirs":{');
    first = true;
    for (const [k, v] of this.#nextDirs) put(k, v);
    if (keepOld) { for (const [k, v] of this.#dirs) if (!this.#nextDirs.has(k)) put(k, v); }
    out.push("}}");
    const log = this.#log;
    const bytesOf = function* (p: Uint8Array | "log"): Generator<Uint8Array> {
      if (p !== "log") return yield p;
      let skip = logSkip;
      for (const b of log.blocks()) (yield b.subarray(skip), skip = 0);
    };
    const tmp = `${path}.${Deno.pid}.tmp`;
    try {
      if (parts.length && pieces) {
        // parts[0]: the head's reserved space and the start of the body; then the log; then out
        const head = parts[0] as Uint8Array;
        parts.push(out.bytes());
        pieces.update(this.#binding.key);
        pieces.update(head.subarray(MAC_END));
        for (let i = 1; i < parts.length; i++) for (const b of bytesOf(parts[i])) pieces.update(b);
        head.set(new TextEncoder().encode(`${MAC_PREFIX}${pieces.hex()}",`));
      } else parts.push(out.seal(this.#binding.key));
      // a shipped .hd/ (or .hd/statcache.json.*.tmp) linking out of the project: not saved
      refuseStateLink(tmp);
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")) || ".", { recursive: true, mode: 0o700 });
      // private, like the rest of .hd/
      const f = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
      try {
        for (const p of parts) {
          for (const b of bytesOf(p)) {
            for (let o = 0; o < b.length;) o += f.writeSync(b.subarray(o));
          }
        }
      } finally {
        f.close();
      }
      Deno.renameSync(tmp, path);
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* nothing written */ }
      return false;
    }
    if (keepOld) {
      for (const [k, v] of this.#next) this.#rows.set(k, v);
      for (const [k, v] of this.#nextDirs) this.#dirs.set(k, v);
    } else {
      this.#rows = this.#next;
      this.#dirs = this.#nextDirs;
    }
    this.#next = new Map();
    this.#nextDirs = new Map();
    this.#log.saved = true; // parsed into #rows only if this process scans again
    this.dirsChanged = false;
    this.#savedAt = savedAt;
    return true;
  }
}
