/**
 * The content-addressed store on disk.
 *
 * Layout (format version 1, see README "On-disk format"):
 * ```
 * $HD_HOME/
 *   FORMAT                 "hd-store 1"
 *   objects/<2 hex>/<62 hex>     chunks and DAG nodes: codec byte + payload
 *   manifests/<2 hex>/<62 hex>   large-file manifests: codec byte + payload
 *   refs/<name>            a root: one hex id and a newline
 *   tmp/                   temp files, renamed into place (same filesystem)
 *   lock                   flock: adds hold it shared, gc exclusive
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
import { blake3Hex, isId } from "./hash.ts";
import { decodeObject, encodeObject } from "./compress.ts";
import { decodeManifest, encodeManifest, type Manifest } from "./manifest.ts";
import { CorruptObjectError, HdError, MissingObjectError } from "./errors.ts";

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

/** Kinds of content files in the store. */
export type ObjectKind = "objects" | "manifests";

let tmpCounter = 0;

/** A content-addressed store rooted at a directory. */
export class Store {
  /** Absolute path of the store directory. */
  readonly root: string;
  #known = new Set<string>();
  #tmp: string;
  #lockFile: Deno.FsFile | null = null;
  #lockDepth = 0;

  private constructor(root: string) {
    this.root = root;
    this.#tmp = `${root}/tmp`;
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
      for (const kind of ["objects", "manifests"]) {
        for (const h of HEX2) Deno.mkdirSync(`${root}/${kind}/${h}`, { recursive: true });
      }
      Deno.mkdirSync(`${root}/refs`, { recursive: true });
      Deno.mkdirSync(`${root}/tmp`, { recursive: true });
      const tmp = `${root}/tmp/FORMAT.${Deno.pid}.${tmpCounter++}`;
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

  /** True when the store holds the object or manifest `id`. */
  has(id: string, kind: ObjectKind = "objects"): boolean {
    const key = kind === "objects" ? id : "m" + id;
    if (this.#known.has(key)) return true;
    try {
      Deno.lstatSync(this.path(kind, id));
      this.#known.add(key);
      return true;
    } catch {
      return false;
    }
  }

  /** A fresh temp path inside the store (same filesystem, so rename is atomic). */
  tempPath(label = "obj"): string {
    return `${this.#tmp}/${label}.${Deno.pid}.${tmpCounter++}.${
      Math.random().toString(36).slice(2, 8)
    }`;
  }

  /** Writes `data` to `dest` atomically: temp file, optional fsync, rename. */
  writeAtomic(dest: string, data: Uint8Array, opts: { fsync?: boolean } = {}): void {
    const tmp = this.tempPath();
    try {
      if (opts.fsync) {
        const f = Deno.openSync(tmp, { write: true, createNew: true });
        try {
          let off = 0;
          while (off < data.length) off += f.writeSync(data.subarray(off));
          f.syncSync();
        } finally {
          f.close();
        }
      } else {
        Deno.writeFileSync(tmp, data);
      }
      Deno.renameSync(tmp, dest);
    } catch (e) {
      try {
        Deno.removeSync(tmp);
      } catch { /* already gone */ }
      if (e instanceof Deno.errors.NotFound) {
        // A fan-out directory went missing (manual cleanup): recreate and retry once.
        Deno.mkdirSync(this.#tmp, { recursive: true });
        Deno.mkdirSync(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
        Deno.writeFileSync(tmp, data);
        Deno.renameSync(tmp, dest);
        return;
      }
      throw e;
    }
  }

  /** Stores raw bytes as an object (chunk or node) if absent; returns its id. */
  putObject(bytes: Uint8Array, opts: { compress?: boolean; id?: string } = {}): string {
    const id = opts.id ?? blake3Hex(bytes);
    if (this.has(id)) return id;
    this.writeAtomic(this.path("objects", id), encodeObject(bytes, opts.compress ?? true));
    this.#known.add(id);
    return id;
  }

  /** Reads an object and verifies its hash. */
  getObject(id: string): Uint8Array {
    return this.#read("objects", id);
  }

  #read(kind: ObjectKind, id: string): Uint8Array {
    if (!isId(id)) {
      throw new HdError(`Cannot read ${kind.slice(0, -1)} "${id}": not a 64-hex id`, "");
    }
    const p = this.path(kind, id);
    let stored: Uint8Array;
    try {
      stored = Deno.readFileSync(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new MissingObjectError(id, kind === "objects" ? "object" : "manifest");
      }
      throw e;
    }
    let bytes: Uint8Array;
    try {
      bytes = decodeObject(stored);
    } catch (e) {
      throw new CorruptObjectError(id, p, (e as Error).message);
    }
    const actual = blake3Hex(bytes);
    if (actual !== id) throw new CorruptObjectError(id, p, `content hashes to ${actual}`);
    return bytes;
  }

  /** Stores a manifest if absent; returns its id. */
  putManifest(m: Manifest): string {
    const enc = encodeManifest(m);
    const id = blake3Hex(enc);
    if (this.has(id, "manifests")) return id;
    this.writeAtomic(this.path("manifests", id), encodeObject(enc));
    this.#known.add("m" + id);
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
    try {
      return Deno.readTextFileSync(`${this.root}/GENERATION`).trim();
    } catch {
      return "0";
    }
  }

  /** Starts a new gc generation (called by gc before it deletes). */
  bumpGeneration(): void {
    const g = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.writeAtomic(`${this.root}/GENERATION`, new TextEncoder().encode(g + "\n"), {
      fsync: true,
    });
  }

  /** Forgets which ids this process has seen (after a gc deleted some). */
  forgetKnown(): void {
    this.#known.clear();
  }

  // ---- refs ----

  #refPath(name: string): string {
    if (
      !/^[A-Za-z0-9._@:+-]+(\/[A-Za-z0-9._@:+-]+)*$/.test(name) || name.split("/").includes("..")
    ) {
      throw new HdError(
        `Cannot use ref name "${name}": only letters, digits, . _ @ : + - and / are allowed`,
        "pick a name such as trees/myproject",
        2,
      );
    }
    return `${this.root}/refs/${name}`;
  }

  /** Points ref `name` at `id` (atomic, fsynced). */
  setRef(name: string, id: string): void {
    const p = this.#refPath(name);
    Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    this.writeAtomic(p, new TextEncoder().encode(id + "\n"), { fsync: true });
  }

  /** The id a ref points at, or null. */
  getRef(name: string): string | null {
    try {
      return Deno.readTextFileSync(this.#refPath(name)).trim();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  /** Removes a ref; true when it existed. */
  deleteRef(name: string): boolean {
    try {
      Deno.removeSync(this.#refPath(name));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  /** Every ref as [name, id], sorted by name. */
  listRefs(): [string, string][] {
    const out: [string, string][] = [];
    const walk = (dir: string, prefix: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch {
        return;
      }
      for (const e of entries) {
        const name = prefix ? `${prefix}/${e.name}` : e.name;
        if (e.isDirectory) walk(`${dir}/${e.name}`, name);
        else if (e.isFile) out.push([name, Deno.readTextFileSync(`${dir}/${e.name}`).trim()]);
      }
    };
    walk(`${this.root}/refs`, "");
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  // ---- locking ----

  /**
   * Runs `fn` holding the store lock: shared for writers that add, exclusive for gc. Re-entrant
   * within one process for shared holders.
   */
  async withLock<T>(mode: "shared" | "exclusive", fn: () => Promise<T> | T): Promise<T> {
    if (mode === "shared" && this.#lockDepth > 0) {
      this.#lockDepth++;
      try {
        return await fn();
      } finally {
        this.#lockDepth--;
      }
    }
    const f = Deno.openSync(`${this.root}/lock`, { read: true, write: true, create: true });
    await f.lock(mode === "exclusive");
    this.#lockFile = f;
    this.#lockDepth = 1;
    try {
      return await fn();
    } finally {
      this.#lockDepth = 0;
      this.#lockFile = null;
      try {
        f.unlockSync();
      } finally {
        f.close();
      }
    }
  }

  /** Lists every id stored under `kind`. */
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
