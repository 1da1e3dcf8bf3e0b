/**
 * The stat cache: path → (size, mtime, ctime, inode, mode) → file content, so that scanning an
 * unchanged tree reads no file contents. Saved atomically as JSON beside the state it serves.
 *
 * Entries whose mtime is within {@link RACY_MS} of the moment the cache was saved are not trusted
 * on the next scan (git's "racily clean" rule): a write in the same clock tick as the save would
 * otherwise go unnoticed. The cache also records the store's gc generation: after a gc the cache
 * is dropped, since the objects it points at may be gone.
 *
 * @example
 * ```ts
 * import { StatCache } from "./statcache.ts";
 * const cache = StatCache.load(".hd/statcache.json", store.generation());
 * ```
 * @module
 */
import type { FileNode } from "../dag/node.ts";

/** Entries modified this close to the save time are re-read on the next scan. */
export const RACY_MS = 1000;

const VERSION = 2;

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

/** A loaded stat cache. */
export class StatCache {
  #rows: Map<string, Row>;
  #next = new Map<string, Row>();
  /** Directory path → [Dir id, entry count, mode] from the last scan. */
  #dirs: Map<string, DirRow>;
  #nextDirs = new Map<string, DirRow>();
  #savedAt: number;
  #generation: string;
  /** Number of lookups answered from the cache in this scan. */
  hits = 0;
  /** Number of lookups that needed the file's content. */
  misses = 0;

  private constructor(
    rows: Map<string, Row>,
    savedAt: number,
    generation: string,
    dirs: Map<string, DirRow> = new Map(),
  ) {
    this.#rows = rows;
    this.#dirs = dirs;
    this.#savedAt = savedAt;
    this.#generation = generation;
  }

  /** An empty cache. */
  static empty(generation: string): StatCache {
    return new StatCache(new Map(), 0, generation);
  }

  /** Loads the cache at `path`; a missing, unreadable or outdated cache loads empty. */
  static load(path: string, generation: string): StatCache {
    try {
      const j = JSON.parse(Deno.readTextFileSync(path));
      if (j.version !== VERSION || j.generation !== generation) return StatCache.empty(generation);
      return new StatCache(
        new Map(Object.entries(j.rows)),
        j.savedAt,
        generation,
        new Map(Object.entries(j.dirs ?? {})),
      );
    } catch {
      return StatCache.empty(generation);
    }
  }

  /** The cached File node for `rel` when its stat signature is unchanged, else null. */
  lookup(rel: string, sig: StatSig): FileNode | null {
    const r = this.#rows.get(rel);
    if (
      r && r[0] === sig.size && r[1] === sig.mtime && r[2] === sig.ctime && r[3] === sig.ino &&
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
    if (r && r[1] === count && r[2] === mode) {
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
    this.#next.set(rel, [sig.size, sig.mtime, sig.ctime, sig.ino, sig.mode, content(f)]);
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
    this.#next.delete(rel);
    this.#rows.delete(rel);
    this.#dropAncestors(rel);
  }

  /**
   * Writes the entries seen since load (plus, with `keepOld`, the older ones) atomically.
   * Returns false (and writes nothing) when the directory cannot be written.
   */
  save(path: string, keepOld = false): boolean {
    if (
      !keepOld && this.misses === 0 && !this.dirsChanged && this.#next.size === this.#rows.size &&
      this.#nextDirs.size === this.#dirs.size && this.#savedAt > 0
    ) {
      this.#next = new Map(); // every entry was a hit: the file on disk already says this
      this.#nextDirs = new Map();
      return true;
    }
    const rows: Record<string, Row> = {};
    if (keepOld) { for (const [k, v] of this.#rows) rows[k] = v; }
    for (const [k, v] of this.#next) rows[k] = v;
    const dirs: Record<string, DirRow> = {};
    if (keepOld) { for (const [k, v] of this.#dirs) dirs[k] = v; }
    for (const [k, v] of this.#nextDirs) dirs[k] = v;
    const savedAt = Date.now();
    const body = JSON.stringify({
      version: VERSION,
      generation: this.#generation,
      savedAt,
      rows,
      dirs,
    });
    const tmp = `${path}.${Deno.pid}.tmp`;
    try {
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")) || ".", { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(tmp, body, { mode: 0o600 }); // private, like the rest of .hd/
      Deno.renameSync(tmp, path);
    } catch {
      try {
        Deno.removeSync(tmp);
      } catch { /* nothing written */ }
      return false;
    }
    this.#rows = new Map(Object.entries(rows));
    this.#next = new Map();
    this.#dirs = new Map(Object.entries(dirs));
    this.#nextDirs = new Map();
    this.dirsChanged = false;
    this.#savedAt = savedAt;
    return true;
  }
}
