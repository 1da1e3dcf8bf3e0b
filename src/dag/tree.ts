/**
 * An in-memory, mutable view of a directory tree whose hashes are computed bottom-up and cached.
 *
 * Changing one file marks only its ancestors dirty; {@link Tree.commit} rehashes exactly those
 * directories (siblings keep their cached ids) and writes the new Dir nodes to the store.
 * `rehashed` counts the nodes recomputed by the last commit, so invalidation can be tested.
 *
 * @example
 * ```ts
 * import { Tree } from "./tree.ts";
 * import type { FileNode } from "./node.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const rootId: string;
 * declare const fileNode: FileNode;
 * const t = Tree.load(store, rootId);
 * t.setFile("src/a.ts", fileNode);
 * const newRoot = t.commit(store);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { getNode, type NodeSource } from "./dag.ts";
import { compareNames, type DirEntry, type DirNode, encodeNode, type FileNode } from "./node.ts";
import { S_IFDIR } from "../sys/mode.ts";
import { blake3Hex } from "../cas/hash.ts";
import { HdError } from "../sys/errors.ts";

/** A directory in the tree; `entries` is null until loaded from the store. */
export class MemDir {
  /** Cached id; null when this directory or something below it changed. */
  id: string | null;
  /** st_mode of the directory (with S_IFDIR). */
  mode: number;
  /** Extra metadata kept from the source (image layers). */
  meta: { uid?: number; gid?: number; mtime?: number; xattrs?: [string, Uint8Array][] } = {};
  #entries: Map<string, MemDir | FileNode> | null;
  #store: NodeSource | null;

  constructor(
    mode = S_IFDIR | 0o755,
    entries: Map<string, MemDir | FileNode> | null = new Map(),
    id: string | null = null,
    store: NodeSource | null = null,
  ) {
    this.mode = mode;
    this.#entries = entries;
    this.id = id;
    this.#store = store;
  }

  /** A directory known only by id, loaded from `store` on first use. */
  static lazy(id: string, store: NodeSource): MemDir {
    return new MemDir(S_IFDIR | 0o755, null, id, store);
  }

  /**
   * Forgets the children of a directory whose node is stored under {@link id}; they load again
   * from `store` on next use. A large ingest drops each finished directory's file nodes so.
   */
  unload(store: Store): void {
    if (this.id === null) throw new Error("Cannot unload a directory: it has no stored id");
    this.#entries = null;
    this.#store = store;
  }

  /** Whether the children are in memory (not left to load from the store on first use). */
  get loaded(): boolean {
    return this.#entries !== null;
  }

  /** The children, loaded from the store on first use. */
  get entries(): Map<string, MemDir | FileNode> {
    if (this.#entries === null) {
      const node = getNode(this.#store!, this.id!);
      if (node.type !== "dir") {
        throw new HdError(`Cannot load directory ${this.id}: it is a ${node.type} node`, "");
      }
      this.mode = node.mode;
      this.meta = dirMeta(node);
      this.#entries = fromDirNode(node, this.#store!);
    }
    return this.#entries;
  }
}

function dirMeta(node: DirNode): MemDir["meta"] {
  const m: MemDir["meta"] = { uid: node.uid, gid: node.gid, mtime: node.mtime };
  if (node.xattrs?.length) m.xattrs = node.xattrs;
  return m;
}

function fromDirNode(node: DirNode, store: NodeSource): Map<string, MemDir | FileNode> {
  const m = new Map<string, MemDir | FileNode>();
  for (const e of node.entries) {
    m.set(e.name, e.dir !== undefined ? MemDir.lazy(e.dir, store) : e.file);
  }
  return m;
}

/** A mutable tree with cached, bottom-up hashes. */
export class Tree {
  /** The root directory. */
  root: MemDir;
  /** Nodes rehashed by the last {@link commit}: changed files plus dirty directories. */
  rehashed = 0;
  #changedFiles = 0;

  constructor(root: MemDir = new MemDir()) {
    this.root = root;
  }

  /**
   * A tree backed by a stored root Dir node (subdirectories load on demand), from a store or
   * any {@link NodeSource}.
   */
  static load(store: NodeSource, rootId: string): Tree {
    const node = getNode(store, rootId);
    if (node.type !== "dir") {
      throw new HdError(
        `Cannot load tree ${rootId}: it is a ${node.type} node, not a directory`,
        "pass the hash of a directory (the root printed by `hd cas add`)",
      );
    }
    const root = new MemDir(node.mode, fromDirNode(node, store), rootId, store);
    root.meta = dirMeta(node);
    return new Tree(root);
  }

  #walk(path: string, create: boolean): { parent: MemDir; name: string } | null {
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.length === 0) throw new Error(`Cannot use path "${path}": it names the root`);
    let dir = this.root;
    const chain: MemDir[] = [dir];
    for (let i = 0; i < parts.length - 1; i++) {
      let next = dir.entries.get(parts[i]);
      if (next === undefined || !(next instanceof MemDir)) {
        if (!create) return null;
        next = new MemDir();
        dir.entries.set(parts[i], next);
      }
      dir = next;
      chain.push(dir);
    }
    if (create) {
      dir.entries; // load the last directory before its id is cleared
      for (const d of chain) d.id = null;
    }
    return { parent: dir, name: parts[parts.length - 1] };
  }

  /** The node at `path`, or undefined. */
  get(path: string): MemDir | FileNode | undefined {
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    let cur: MemDir | FileNode = this.root;
    for (const p of parts) {
      if (!(cur instanceof MemDir)) return undefined;
      const next: MemDir | FileNode | undefined = cur.entries.get(p);
      if (next === undefined) return undefined;
      cur = next;
    }
    return cur;
  }

  /** Sets (adds or replaces) the file at `path`; parents are created as needed. */
  setFile(path: string, file: FileNode): void {
    const w = this.#walk(path, true)!;
    w.parent.entries.set(w.name, file);
    this.#changedFiles++;
  }

  /** Sets the directory at `path` (an empty one by default). */
  setDir(path: string, dir: MemDir = new MemDir()): void {
    const w = this.#walk(path, true)!;
    w.parent.entries.set(w.name, dir);
  }

  /** Removes `path` (file or whole directory); true when something was removed. */
  remove(path: string): boolean {
    const w = this.#walk(path, false);
    if (!w || !w.parent.entries.has(w.name)) return false;
    this.#walk(path, true); // mark the chain dirty
    w.parent.entries.delete(w.name);
    return true;
  }

  /**
   * Rehashes dirty directories bottom-up, writing each new Dir node to `store` (when given),
   * and returns the root id. Iterative: any depth.
   */
  commit(store?: Store): string {
    let dirs = 0;
    // Post-order with an explicit stack (a tree may be thousands of levels deep): a frame's `i`
    // stays on a dirty subdirectory until that one is hashed, then moves on.
    type Frame = { d: MemDir; names: string[]; i: number; entries: DirEntry[] };
    const open = (d: MemDir): Frame => ({
      d,
      names: [...d.entries.keys()].sort(compareNames),
      i: 0,
      entries: [],
    });
    const stack: Frame[] = this.root.id === null ? [open(this.root)] : [];
    while (stack.length) {
      const f = stack[stack.length - 1];
      if (f.i < f.names.length) {
        const name = f.names[f.i];
        const c = f.d.entries.get(name)!;
        if (c instanceof MemDir) {
          if (c.id === null) {
            stack.push(open(c));
            continue;
          }
          f.entries.push({ name, dir: c.id });
        } else {
          f.entries.push({ name, file: c });
        }
        f.i++;
        continue;
      }
      const d = f.d;
      const bytes = encodeNode(dirNode(d, f.entries));
      d.id = store ? store.putObject(bytes) : blake3Hex(bytes);
      dirs++;
      stack.pop();
    }
    const id = this.root.id!;
    this.rehashed = dirs + this.#changedFiles;
    this.#changedFiles = 0;
    return id;
  }

  /**
   * The encoding of every loaded directory, each with its id (the tree committed: every loaded
   * directory has one). A directory not loaded is left out with everything below it.
   */
  *encodedDirs(): Generator<[string, Uint8Array]> {
    const stack: MemDir[] = [this.root];
    while (stack.length) {
      const d = stack.pop()!;
      if (d.id === null) throw new Error("Cannot encode a directory: the tree is not committed");
      if (!d.loaded) continue;
      const entries: DirEntry[] = [];
      for (const name of [...d.entries.keys()].sort(compareNames)) {
        const c = d.entries.get(name)!;
        if (c instanceof MemDir) {
          entries.push({ name, dir: c.id! });
          stack.push(c);
        } else entries.push({ name, file: c });
      }
      yield [d.id, encodeNode(dirNode(d, entries))];
    }
  }
}

/** The Dir node of `d` with `entries` (sorted, children's ids known). */
function dirNode(d: MemDir, entries: DirEntry[]): DirNode {
  const node: DirNode = { type: "dir", mode: d.mode, entries, ...d.meta };
  for (const k of ["uid", "gid", "mtime", "xattrs"] as const) {
    if (node[k] === undefined) delete node[k];
  }
  return node;
}
