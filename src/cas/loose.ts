/**
 * Loose objects: one file per object or manifest, `objects/<2 hex>/<62 hex>` and
 * `manifests/<2 hex>/<62 hex>`, each holding the stored bytes (codec byte + payload). Writes
 * outside a batch land here; batched writes go to packs (packs.ts). This module knows the paths,
 * writes atomically, reads, lists and measures. It does not verify what it reads, nor remember
 * what exists: the store does both, for loose and packed alike (the one cache here is the
 * listing of fan-out directories that a batch asks about, see {@link LooseObjects.listed}).
 *
 * @example
 * ```ts
 * import { LooseObjects } from "./loose.ts";
 * import { encodeObject } from "./compress.ts";
 * const root = Deno.makeTempDirSync();
 * const loose = new LooseObjects(root);
 * const id = "ab".repeat(32); // the caller vouches for the id (the store hashes)
 * loose.write("objects", id, encodeObject(new TextEncoder().encode("hi")));
 * console.log(loose.path("objects", id), loose.exists("objects", id), [...loose.list("objects")]);
 * ```
 * @module
 */
import { blake3Hex } from "./hash.ts";
import { decodeObject } from "./compress.ts";
import { writeAtomic } from "./atomic.ts";
import type { ObjectKind } from "./key.ts";

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The loose object and manifest files of the store at `root`. */
export class LooseObjects {
  /** The store directory. */
  readonly root: string;
  readonly #tmp: string;
  /** Fan-out directory ("objects/ab") → names in it, listed once while a batch asks. */
  readonly #dirs = new Map<string, Set<string>>();

  /** `root` is the store directory (its tmp/ holds the temp files of writes). */
  constructor(root: string) {
    this.root = root;
    this.#tmp = `${root}/tmp`;
  }

  /** Path of a loose file of the given kind. */
  path(kind: ObjectKind, id: string): string {
    return `${this.root}/${kind}/${id.slice(0, 2)}/${id.slice(2)}`;
  }

  /** True when the loose file exists (one lstat). */
  exists(kind: ObjectKind, id: string): boolean {
    try {
      Deno.lstatSync(this.path(kind, id));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * {@link exists} from a listing of the fan-out directory, made on first use and kept until
   * {@link forgetListings}: a batch adding many new objects lists each directory once instead of
   * one failed lstat per object. Files written after the listing are not seen (the store
   * remembers what it wrote itself).
   */
  listed(kind: ObjectKind, id: string): boolean {
    // The kind's directory is listed first: a fan-out directory it lacks is not tried (a fresh
    // store would otherwise fail one readDir per fan-out directory and kind).
    let top = this.#dirs.get(kind);
    if (!top) {
      top = new Set();
      try {
        for (const e of Deno.readDirSync(`${this.root}/${kind}`)) top.add(e.name);
      } catch { /* none */ }
      this.#dirs.set(kind, top);
    }
    if (top.size === 0) return false;
    const fan = id.slice(0, 2);
    if (!top.has(fan)) return false;
    const dir = `${kind}/${fan}`;
    let set = this.#dirs.get(dir);
    if (!set) {
      set = new Set();
      try {
        for (const e of Deno.readDirSync(`${this.root}/${dir}`)) set.add(e.name);
      } catch { /* empty */ }
      this.#dirs.set(dir, set);
    }
    return set.has(id.slice(2));
  }

  /** Drops the listings of {@link listed} (at the end of a batch). */
  forgetListings(): void {
    this.#dirs.clear();
  }

  /** The stored bytes of a loose file, or null when there is none. */
  read(kind: ObjectKind, id: string): Uint8Array | null {
    try {
      return Deno.readFileSync(this.path(kind, id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  /** Writes stored bytes (codec byte + payload) as the loose file of `id`, atomically. */
  write(kind: ObjectKind, id: string, stored: Uint8Array, opts: { fsync?: boolean } = {}): void {
    writeAtomic(this.#tmp, this.path(kind, id), stored, opts);
  }

  /** Bytes the loose file takes (0 when absent). */
  size(kind: ObjectKind, id: string): number {
    try {
      return Deno.lstatSync(this.path(kind, id)).size;
    } catch {
      return 0;
    }
  }

  /** True when the loose file decodes and hashes to `id`. */
  verifies(kind: ObjectKind, id: string): boolean {
    try {
      return blake3Hex(decodeObject(Deno.readFileSync(this.path(kind, id)))) === id;
    } catch {
      return false;
    }
  }

  /** Every id with a loose file of `kind`. */
  *list(kind: ObjectKind): Generator<string> {
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
}
