/**
 * The projection of a stored tree as a filesystem: inodes for path → node, and lazy, verified
 * reads of file ranges through manifests and chunks, with a small chunk cache.
 *
 * An inode is made the first time its parent directory is listed or looked up, and keeps its
 * number for the life of the projection (numbers never move to another path or node). A file's
 * chunks are read only when a read touches their range; every chunk read goes through
 * {@link Store.getObject}, which checks the bytes against their id, so a damaged object makes
 * that read fail with EIO (and a log line) instead of returning wrong bytes.
 *
 * The write overlay (overlay.ts) keeps its changes on the same inodes (`data`, `dirty`).
 *
 * @example
 * ```ts
 * import { Projection } from "./projected.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const rootId: string;
 * const p = new Projection(store, rootId);
 * const ino = p.lookup(1, "README.md").ino;
 * const bytes = p.read(ino, 0, 4096);
 * ```
 * @module
 */
import { CorruptObjectError, HdError } from "../cas/errors.ts";
import type { Store } from "../cas/store.ts";
import { getNode } from "../dag/dag.ts";
import { loadNativeBlake3 } from "../cas/hash.ts";
import { decodeNode, type DirNode, type FileNode, type Node } from "../dag/node.ts";
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { fullGc } from "../sys/memory.ts";

/** The mtime shown for nodes that carry none (project trees): 2000-01-01T00:00:00Z. */
export const FIXED_MTIME = 946684800;

/** errno values the filesystem replies with. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ENODATA: 61,
} as const;

/** A failure with the errno to reply. */
export class FsError extends Error {
  /** The errno (positive). */
  readonly errno: number;
  constructor(errno: number, message = "") {
    super(message || `errno ${errno}`);
    this.errno = errno;
  }
}

/** One file or directory of the mounted view. */
export interface Inode {
  ino: number;
  /** The directory holding it (the root is its own parent). */
  parent: Inode;
  name: string;
  /** Full st_mode with type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in seconds. */
  mtime: number;
  size: number;
  rdev: number;
  /** Symlink target. */
  target?: string;
  /** The stored File node this inode shows (absent for overlay files and directories). */
  lower?: FileNode;
  /** Id of the stored Dir node this directory shows (absent for overlay directories). */
  lowerDir?: string;
  /** Children by name once loaded (directories only); the merged view when an overlay is on. */
  children: Map<string, Inode> | null;
  /** Chunk ids of `lower`, once known. */
  chunkIds?: string[];
  /** End offsets of the chunks whose sizes are known (a prefix of `chunkIds`). */
  chunkEnds?: number[];
  /** Content of a file written through the overlay (its first `size` bytes are valid). */
  data?: Uint8Array;
  /** Overlay: this file's content or this directory's entries differ from the stored tree. */
  dirty?: boolean;
  /** Overlay: names of stored entries removed from this directory. */
  whiteouts?: Set<string>;
  /** The stored Dir node carried owner/mtime (image layers): keep them in snapshots. */
  hasMeta?: boolean;
  /** Overlay: removed from its directory while still open. */
  unlinked?: boolean;
  /** Layer view: the stored directory held an opaque marker (`.wh..wh..opq`). */
  opaque?: boolean;
  /** References the kernel holds (lookups replied minus forgets); absent means none. */
  nlookup?: number;
}

/**
 * Bound of the process's cache of decoded Dir nodes, in stored bytes (decoded, a node takes a few
 * times that): 4 MiB holds the directories of a ~60k-file node_modules.
 */
export const DIR_NODE_CACHE_BYTES = 4 << 20;

/**
 * Decoded Dir nodes by id, shared by every projection of this process (the store's mount server
 * serves many mounts, one after another and side by side). An id is the BLAKE3 of the node's
 * bytes, checked when they were read, so a decoded node is the same in every tree that holds it:
 * a remount of a tree, or another tree that shares a subtree with it (two versions of a
 * node_modules, an image's layers across `hd up`s), lists those directories without reading,
 * verifying or decoding them again. Nothing mutates a decoded node. Least recently used first out.
 */
const dirNodes = new Map<string, { node: Node; bytes: number }>();
let dirNodeBytes = 0;

/** What the process's Dir node cache holds now (for the mount server's stats). */
export function dirNodeCache(): { nodes: number; bytes: number } {
  return { nodes: dirNodes.size, bytes: dirNodeBytes };
}

/** Counters of what the projection read from the store. */
export interface ProjectionStats {
  /** Chunk objects read (and verified) from the store. */
  chunkReads: number;
  /** Reads answered from the chunk cache. */
  chunkCacheHits: number;
  /** Chunks whose size was learned without verifying them (to seek past them). */
  sizeProbes: number;
  /** Manifests read. */
  manifestReads: number;
  /** Dir nodes read. */
  dirReads: number;
  /** Of those, found decoded in the process's node cache (not read from the store). */
  dirCacheHits: number;
  /** Bytes returned to readers. */
  bytesServed: number;
  /** Reads that failed with EIO (corrupt or missing objects). */
  readErrors: number;
  /** Inodes made so far. */
  inodes: number;
  /** Inodes in the table now (made minus evicted). */
  live: number;
  /** Inodes dropped from the table after the kernel forgot them (see {@link ProjectionOptions.inodeCap}). */
  evicted: number;
}

/** Options of a {@link Projection}. */
export interface ProjectionOptions {
  /**
   * Bytes of decoded chunks kept in memory (default 16 MiB): only chunks read in part are kept,
   * for the reads that take the rest of them (the kernel's page cache keeps what was read).
   */
  cacheBytes?: number;
  /** Owner shown for nodes without one (default: this process's uid/gid). */
  uid?: number;
  gid?: number;
  /** Where problems are reported (default console.error). */
  log?: (line: string) => void;
  /**
   * Show OCI whiteouts the way overlayfs reads a lower layer (what materializeLayer writes):
   * `.wh.NAME` as a 0:0 character device NAME, `.wh..wh..opq` as the xattr
   * `trusted.overlay.opaque=y` on its directory.
   */
  layerView?: boolean;
  /**
   * Inodes kept in the table before directories whose entries the kernel has all forgotten are
   * unloaded, least recently used first (default {@link INODE_CAP}); 0 never unloads (a writable
   * mount: its changes live on the inodes). Entries the kernel still references are never dropped,
   * so the cap bounds what is kept beyond them. An unloaded directory is read again from its Dir
   * node when next used; its entries get new numbers (numbers are never reused).
   */
  inodeCap?: number;
}

/** Default {@link ProjectionOptions.inodeCap}: about 40 MiB of inodes at ~600 B each. */
export const INODE_CAP = 65_536;

/** Inodes unloaded before a full garbage collection is asked for. */
const GC_AFTER = 8192;

/** Chunk sizes remembered (to seek in files without reading chunks) before the memo restarts. */
const SIZE_MEMO = 65_536;

/** Prefix of an OCI whiteout entry. */
const WH = ".wh.";
/** Name of the OCI opaque-directory marker. */
const WH_OPQ = ".wh..wh..opq";
const OPAQUE: [string, Uint8Array] = ["trusted.overlay.opaque", new TextEncoder().encode("y")];

/**
 * Distinct Dir nodes {@link xattrProof} reads before it gives up (~100 bytes an id kept: ~20 MiB
 * at most; a Debian image with Node.js has ~3k).
 */
export const XATTR_PROOF_DIRS = 200_000;

/**
 * Whether a Dir node holds anything the kernel reads as an extended attribute: xattrs of its own
 * or of a file entry, or (in a layer view) the opaque marker `.wh..wh..opq`, which becomes
 * `trusted.overlay.opaque` on the directory.
 */
export function dirHoldsXattrs(node: DirNode, layerView: boolean): boolean {
  if (node.xattrs?.length) return true;
  for (const e of node.entries) {
    if (e.file?.xattrs?.length || (layerView && e.name === WH_OPQ)) return true;
  }
  return false;
}

/**
 * The proof that no directory under `rootId` holds an extended attribute ({@link dirHoldsXattrs}),
 * one Dir node at a time: yields after each node (so that a server can run it between requests)
 * and returns true when every Dir node was read and none holds one; false at the first that does,
 * at a node that is not a directory, when `read` throws, and past `limit` distinct Dir nodes (not
 * proven: the ids it keeps to read each once, as layers share subtrees, stay bounded).
 *
 * @example
 * ```ts
 * import { xattrProof } from "./projected.ts";
 * import type { DirNode } from "../dag/node.ts";
 * const nodes = new Map<string, DirNode>([["r", { type: "dir", mode: 0o40755, entries: [] }]]);
 * const walk = xattrProof("r", (id) => nodes.get(id)!, true);
 * let step = walk.next();
 * while (!step.done) step = walk.next();
 * console.log(step.value); // true: nothing to answer for
 * ```
 */
export function* xattrProof(
  rootId: string,
  read: (id: string) => Node,
  layerView: boolean,
  limit = XATTR_PROOF_DIRS,
): Generator<void, boolean> {
  const stack = [rootId];
  const seen = new Set(stack);
  for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
    if (seen.size > limit) return false;
    let node: Node;
    try {
      node = read(id);
    } catch {
      return false;
    }
    if (node.type !== "dir" || dirHoldsXattrs(node, layerView)) return false;
    for (const e of node.entries) {
      if (e.dir !== undefined && !seen.has(e.dir)) (seen.add(e.dir), stack.push(e.dir));
    }
    yield;
  }
  return true;
}

/** A stored tree seen as inodes, with lazy verified reads. */
export class Projection {
  readonly store: Store;
  /** Id of the root Dir node. */
  readonly rootId: string;
  /** The root inode (number 1). */
  readonly root: Inode;
  readonly stats: ProjectionStats = {
    chunkReads: 0,
    chunkCacheHits: 0,
    sizeProbes: 0,
    manifestReads: 0,
    dirReads: 0,
    dirCacheHits: 0,
    bytesServed: 0,
    readErrors: 0,
    inodes: 1,
    live: 1,
    evicted: 0,
  };
  #inodes = new Map<number, Inode>();
  /** Directories with loaded entries that some forget touched, least recently used first. */
  #forgotten = new Map<number, Inode>();
  #inodeCap: number;
  #sinceGc = 0;
  #gcPending = false;
  /** The root's node as the constructor read it, until the root's first listing uses it. */
  #rootNode: Node | null = null;
  /** The native BLAKE3 was asked for (at the first chunk read). */
  #nativeAsked = false;
  #nextIno = 2;
  #cache = new Map<string, Uint8Array>();
  #cacheBytes = 0;
  #cacheLimit: number;
  #uid: number;
  #gid: number;
  #log: (line: string) => void;
  #scratch = new Uint8Array(1 << 20);
  #lastId: string | null = null;
  #lastBytes: Uint8Array | null = null;
  #sizes = new Map<string, number>();
  #layerView: boolean;
  #xattrWalk: Generator<void, boolean> | null = null;
  #xattrFree: boolean | null = null;

  constructor(store: Store, rootId: string, opts: ProjectionOptions = {}) {
    this.store = store;
    this.rootId = rootId;
    this.#cacheLimit = opts.cacheBytes ?? 16 << 20;
    this.#uid = opts.uid ?? Deno.uid() ?? 0;
    this.#gid = opts.gid ?? Deno.gid() ?? 0;
    this.#log = opts.log ?? ((l) => console.error(l));
    this.#layerView = opts.layerView ?? false;
    this.#inodeCap = opts.inodeCap ?? INODE_CAP;
    const node = getNode(store, rootId);
    this.#rootNode = node;
    if (node.type !== "dir") {
      throw new HdError(
        `Cannot mount ${rootId}: it is a ${node.type} node, not a directory`,
        "pass the hash of a directory tree (the root printed by `hd cas add`) or its ref",
      );
    }
    const root = {
      ino: 1,
      name: "",
      mode: node.mode,
      uid: node.uid ?? this.#uid,
      gid: node.gid ?? this.#gid,
      mtime: node.mtime ?? FIXED_MTIME,
      size: 0,
      rdev: 0,
      lowerDir: rootId,
      children: null,
    } as unknown as Inode;
    root.parent = root;
    this.root = root;
    this.#inodes.set(1, root);
  }

  /** True once a file chunk has been read (file content is being served). */
  get chunksRead(): boolean {
    return this.#nativeAsked;
  }

  /** Writes a line to the mount's log. */
  log(line: string): void {
    this.#log(line);
  }

  /** The inode numbered `ino`; throws ENOENT for an unknown number. */
  inode(ino: number): Inode {
    const n = this.#inodes.get(ino);
    if (!n) throw new FsError(Errno.ENOENT, `no inode ${ino}`);
    return n;
  }

  /** Makes a new inode (used by the overlay for created files). */
  newInode(parent: Inode, name: string, fields: Partial<Inode>): Inode {
    const n = this.#add(parent, name, S_IFREG | 0o644, this.#uid, this.#gid, FIXED_MTIME, 0, 0);
    Object.assign(n, fields);
    return n;
  }

  /**
   * A new inode with every common field present from the start, in one order: all inodes share
   * one hidden class, so the handlers' reads of `mode`, `size`, `lowerDir` … stay monomorphic
   * (a spread of optional fields gave each combination its own shape; the in-process walk of a
   * 760-directory node_modules took ~120 ms, most of it there).
   */
  #add(
    parent: Inode,
    name: string,
    mode: number,
    uid: number,
    gid: number,
    mtime: number,
    size: number,
    rdev: number,
    lower?: FileNode,
    lowerDir?: string,
  ): Inode {
    const n: Inode = {
      ino: this.#nextIno++,
      parent,
      name,
      mode,
      uid,
      gid,
      mtime,
      size,
      rdev,
      target: lower?.target,
      lower,
      lowerDir,
      children: null,
      chunkIds: undefined,
      chunkEnds: undefined,
      hasMeta: undefined,
      nlookup: undefined,
    };
    this.#inodes.set(n.ino, n);
    this.stats.inodes++;
    this.stats.live++;
    return n;
  }

  /** Forgets an inode number (an unlinked file, once closed). */
  dropInode(ino: number): void {
    if (ino !== 1 && this.#inodes.delete(ino)) this.stats.live--;
  }

  /** Counts a reference the kernel took (an entry replied to a lookup, create or readdirplus). */
  remember(n: Inode): void {
    n.nlookup = (n.nlookup ?? 0) + 1;
  }

  /**
   * The kernel dropped `count` references to `ino` (FUSE forget). Once none is left, its
   * directory becomes a candidate for unloading, and directories are unloaded, least recently
   * used first, while the table holds more than the cap.
   */
  forget(ino: number, count: number): void {
    const n = this.#inodes.get(ino);
    if (!n) return;
    n.nlookup = Math.max(0, (n.nlookup ?? 0) - count);
    if (n.nlookup > 0 || this.#inodeCap <= 0) return;
    if (n.children) this.#touchForgotten(n);
    if (n !== n.parent) this.#touchForgotten(n.parent);
    this.#trim();
  }

  #touchForgotten(d: Inode): void {
    this.#forgotten.delete(d.ino);
    this.#forgotten.set(d.ino, d);
  }

  /**
   * Unloads forgotten directories, oldest first, until the table is within the cap. After a large
   * unload, a full collection is asked for ({@link fullGc}): otherwise the unloaded inodes stay in
   * the heap until V8 runs out of room, which an idle server never does.
   */
  #trim(): void {
    const before = this.stats.evicted;
    this.#trimTable();
    this.#sinceGc += this.stats.evicted - before;
    if (this.#sinceGc >= GC_AFTER && !this.#gcPending) {
      const gc = fullGc();
      if (!gc) return;
      this.#gcPending = true;
      setTimeout(() => {
        this.#gcPending = false;
        this.#sinceGc = 0;
        gc();
      }, 0);
    }
  }

  #trimTable(): void {
    while (this.stats.live > this.#inodeCap && this.#forgotten.size) {
      const [ino, d] = this.#forgotten.entries().next().value!;
      this.#forgotten.delete(ino);
      if (this.#inodes.get(ino) !== d || !this.#unloadable(d)) continue;
      this.#unload(d);
      // its directory may have been waiting only for this one
      if (d !== d.parent && !d.nlookup) this.#touchForgotten(d.parent);
    }
  }

  /** True when no entry under `d` is referenced by the kernel or holds overlay changes. */
  #unloadable(d: Inode): boolean {
    if (!d.children || !d.lowerDir || d.dirty || d.whiteouts) return false;
    for (const c of d.children.values()) {
      if ((c.nlookup ?? 0) > 0 || c.data || c.dirty || c.unlinked) return false;
      if (c.children && !this.#unloadable(c)) return false;
    }
    return true;
  }

  /** Drops the entries under `d` from the table (`d` stays; its Dir node is read again when used). */
  #unload(d: Inode): void {
    for (const c of d.children!.values()) {
      if (c.children) this.#unload(c);
      this.#forgotten.delete(c.ino);
      this.#inodes.delete(c.ino);
      this.stats.live--;
      this.stats.evicted++;
    }
    d.children = null;
  }

  /** The path of an inode inside the mount, for log lines. */
  pathOf(n: Inode): string {
    const parts: string[] = [];
    for (let c = n; c.ino !== 1; c = c.parent) parts.push(c.name);
    return "/" + parts.reverse().join("/");
  }

  /** The children of a directory, loading its Dir node on first use. */
  children(dir: Inode): Map<string, Inode> {
    if (dir.children) {
      if (this.#forgotten.has(dir.ino)) this.#touchForgotten(dir);
      return dir.children;
    }
    if ((dir.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
    const m = new Map<string, Inode>();
    if (dir.lowerDir) {
      let node;
      try {
        // the root's node, read by the constructor, serves its first listing
        node = dir === this.root && this.#rootNode ? this.#rootNode : this.#node(dir.lowerDir);
        this.#rootNode = null;
        this.stats.dirReads++;
      } catch (e) {
        this.#fail(dir, e);
      }
      if (node.type !== "dir") {
        this.#fail(dir, new Error(`${dir.lowerDir} is a ${node.type} node`));
      }
      dir.mode = node.mode;
      dir.uid = node.uid ?? this.#uid;
      dir.gid = node.gid ?? this.#gid;
      dir.mtime = node.mtime ?? FIXED_MTIME;
      dir.hasMeta = node.uid !== undefined || node.mtime !== undefined;
      const uid = this.#uid;
      const gid = this.#gid;
      for (const e of node.entries) {
        if (this.#layerView && e.name.startsWith(WH)) {
          if (e.name === WH_OPQ) dir.opaque = true;
          else {
            const name = e.name.slice(WH.length);
            m.set(name, this.newInode(dir, name, { mode: S_IFCHR, uid: 0, gid: 0, rdev: 0 }));
          }
          continue;
        }
        if (e.dir !== undefined) {
          const mode = S_IFDIR | 0o755;
          m.set(
            e.name,
            this.#add(dir, e.name, mode, uid, gid, FIXED_MTIME, 0, 0, undefined, e.dir),
          );
        } else {
          const f = e.file;
          m.set(
            e.name,
            this.#add(
              dir,
              e.name,
              f.mode,
              f.uid ?? uid,
              f.gid ?? gid,
              f.mtime ?? FIXED_MTIME,
              f.size,
              f.rdev ?? 0,
              f,
            ),
          );
        }
      }
    }
    dir.children = m;
    return m;
  }

  /**
   * Fills in a subdirectory's own mode and owner from its Dir node (they live in the child, not
   * in the parent's entry). Cheap after the first call.
   */
  #dirMeta(n: Inode): void {
    if (n.children !== null || !n.lowerDir) return;
    this.children(n);
  }

  /** Looks up `name` in directory `parent`; throws ENOENT. */
  lookup(parent: number, name: string): Inode {
    const dir = this.inode(parent);
    const n = this.children(dir).get(name);
    if (!n) throw new FsError(Errno.ENOENT);
    this.#dirMeta(n);
    return n;
  }

  /** The inode for getattr (directory metadata loaded). */
  getattr(ino: number): Inode {
    const n = this.inode(ino);
    this.#dirMeta(n);
    return n;
  }

  /** Number of links shown for an inode: 2 + subdirectories for a directory, else 1. */
  nlink(n: Inode): number {
    if ((n.mode & S_IFMT) !== S_IFDIR) return 1;
    let k = 2;
    for (const c of (n.children ?? new Map()).values()) {
      if ((c.mode & S_IFMT) === S_IFDIR) k++;
    }
    return k;
  }

  /** A symlink's target. */
  readlink(ino: number): string {
    const n = this.inode(ino);
    if ((n.mode & S_IFMT) !== S_IFLNK) throw new FsError(Errno.EINVAL);
    return n.target ?? "";
  }

  #fail(n: Inode, e: unknown): never {
    this.stats.readErrors++;
    const why = e instanceof Error ? e.message : String(e);
    this.#log(`hd mount: cannot read ${this.pathOf(n)}: ${why}`);
    throw new FsError(Errno.EIO, why);
  }

  #chunks(n: Inode): string[] {
    if (n.chunkIds) return n.chunkIds;
    const f = n.lower!;
    if (f.chunks) n.chunkIds = f.chunks;
    else if (f.manifest) {
      try {
        const m = this.store.getManifest(f.manifest);
        this.stats.manifestReads++;
        if (m.size !== f.size) throw new Error(`manifest ${f.manifest} says ${m.size} bytes`);
        n.chunkIds = m.chunks;
      } catch (e) {
        this.#fail(n, e);
      }
    } else n.chunkIds = [];
    n.chunkEnds = [];
    return n.chunkIds!;
  }

  /**
   * A chunk's bytes, verified, from the cache or the store. What comes from the store is a view
   * of a reused buffer, valid until the next fetch: keep it with {@link #remember}.
   */
  #chunk(n: Inode, id: string): Uint8Array {
    const hit = this.#cache.get(id);
    if (hit) {
      this.#cache.delete(id);
      this.#cache.set(id, hit);
      this.stats.chunkCacheHits++;
      return hit;
    }
    if (this.#lastId === id) return this.#lastBytes!;
    this.#lastId = null;
    // File content is what needs the native BLAKE3 (3.5 GB/s; the JS one ~100 MB/s): the first
    // chunk read starts its load if the server's idle time has not already (see serveMount).
    if (!this.#nativeAsked) (this.#nativeAsked = true, loadNativeBlake3());
    let bytes: Uint8Array;
    try {
      bytes = this.#fetch(id);
    } catch (e) {
      this.#fail(n, e);
    }
    this.stats.chunkReads++;
    this.#lastId = id;
    this.#lastBytes = bytes;
    return bytes;
  }

  /** A stored node, read and verified through the fast path, decoded. */
  /**
   * Extended attributes of an inode, from its stored node (image layers keep them); empty for
   * files and directories made through the overlay.
   */
  xattrs(ino: number): [string, Uint8Array][] {
    const n = this.inode(ino);
    if (n.lower) return n.lower.xattrs ?? [];
    if (!n.lowerDir) return [];
    const node = this.#node(n.lowerDir);
    const own = node.type === "dir" ? node.xattrs ?? [] : [];
    if (!this.#layerView) return own;
    this.children(n);
    return n.opaque ? [...own, OPAQUE] : own;
  }

  /**
   * Whether the whole tree is proven to hold no extended attribute (see {@link xattrProof}): true
   * or false once {@link proveXattrsStep} has run the proof to its end, null before.
   */
  xattrFree(): boolean | null {
    return this.#xattrFree;
  }

  /**
   * One step of the proof that the tree holds no extended attribute (one Dir node, through the
   * cache of decoded Dir nodes the listings use); true while steps remain. The first call starts it.
   */
  proveXattrsStep(): boolean {
    if (this.#xattrFree !== null) return false;
    this.#xattrWalk ??= xattrProof(this.rootId, (id) => this.#node(id), this.#layerView);
    const step = this.#xattrWalk.next();
    if (!step.done) return true;
    this.#xattrFree = step.value;
    this.#xattrWalk = null;
    return false;
  }

  /** What the process's cache of decoded Dir nodes holds now (shared by all projections). */
  dirNodeCache(): { nodes: number; bytes: number } {
    return dirNodeCache();
  }

  #node(id: string): Node {
    const hit = dirNodes.get(id);
    if (hit) {
      dirNodes.delete(id); // most recently used last
      dirNodes.set(id, hit);
      this.stats.dirCacheHits++;
      return hit.node;
    }
    const bytes = this.#fetch(id, true);
    let node: Node;
    try {
      node = decodeNode(bytes);
    } catch (e) {
      throw new CorruptObjectError(id, this.store.location("objects", id) ?? "", String(e));
    }
    if (node.type === "dir" && bytes.length <= DIR_NODE_CACHE_BYTES / 16) {
      dirNodes.set(id, { node, bytes: bytes.length });
      dirNodeBytes += bytes.length;
      while (dirNodeBytes > DIR_NODE_CACHE_BYTES) {
        const [k, v] = dirNodes.entries().next().value!;
        dirNodes.delete(k);
        dirNodeBytes -= v.bytes;
      }
    }
    return node;
  }

  /** Keeps a copy of a chunk that a later read will probably need (partly consumed). */
  #remember(id: string, bytes: Uint8Array): void {
    if (this.#cache.has(id) || bytes.length > this.#cacheLimit / 4) return;
    const copy = bytes.slice();
    this.#cache.set(id, copy);
    this.#cacheBytes += copy.length;
    if (this.#lastId === id) this.#lastBytes = copy;
    while (this.#cacheBytes > this.#cacheLimit) {
      const [k, v] = this.#cache.entries().next().value!;
      this.#cache.delete(k);
      this.#cacheBytes -= v.length;
    }
  }

  /**
   * Reads and verifies a chunk through the store (pack read window, libzstd with a reused
   * context, native BLAKE3: see src/cas).
   */
  #fetch(id: string, node = false): Uint8Array {
    this.#lastId = null;
    return this.store.getObject(id, { node });
  }

  /** The size of a chunk without verifying it (a raw object is its stored size - 1 bytes). */
  #probeSize(n: Inode, id: string): number {
    const hit = this.#cache.get(id);
    if (hit) return hit.length;
    const known = this.#sizes.get(id);
    if (known !== undefined) return known;
    // The store knows a chunk's size from its codec byte and zstd frame header, unverified.
    const size = this.store.objectSize(id);
    if (size !== null) {
      this.stats.sizeProbes++;
      if (this.#sizes.size >= SIZE_MEMO) this.#sizes.clear();
      this.#sizes.set(id, size);
      return size;
    }
    // Unknown (an object written before sizes were recorded): read and verify it.
    return this.#chunk(n, id).length;
  }

  /** Index of the chunk holding byte `off` (sizes learned as needed), or -1 past the end. */
  #findChunk(n: Inode, off: number, end: number): number {
    const ids = this.#chunks(n);
    const ends = n.chunkEnds!;
    // Known prefix: binary search.
    if (ends.length && off < ends[ends.length - 1]) {
      let lo = 0, hi = ends.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ends[mid] > off) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    }
    while (ends.length < ids.length) {
      const i = ends.length;
      const start = i ? ends[i - 1] : 0;
      // A chunk starting inside the request is needed anyway: read it; one before, probe it.
      const size = start >= off && start < end
        ? this.#chunk(n, ids[i]).length
        : this.#probeSize(n, ids[i]);
      ends.push(start + size);
      if (ends.length === ids.length && start + size !== n.lower!.size) {
        this.#fail(n, new Error(`chunks add up to ${start + size} bytes, not ${n.lower!.size}`));
      }
      if (start + size > off) return i;
    }
    return -1;
  }

  /**
   * Reads up to `len` bytes at `off` of a file. The result may be a view of a cached chunk or of
   * a scratch buffer reused by the next call: copy it (or send it) before calling again.
   */
  read(ino: number, off: number, len: number): Uint8Array {
    const n = this.inode(ino);
    if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
    if (off >= n.size || len <= 0) return new Uint8Array(0);
    const end = Math.min(n.size, off + len);
    if (n.data) {
      this.stats.bytesServed += end - off;
      return n.data.subarray(off, end);
    }
    if (!n.lower) return new Uint8Array(end - off);
    let i = this.#findChunk(n, off, end);
    if (i < 0) return new Uint8Array(0);
    const ids = n.chunkIds!;
    const ends = n.chunkEnds!;
    const start = (k: number) => (k ? ends[k - 1] : 0);
    let c = this.#chunk(n, ids[i]);
    this.#checkSize(n, i, c);
    // The common case: the range lies inside one chunk, so send a view of it.
    if (end <= ends[i]) {
      // Only a chunk that is read in part is kept: the rest of it is likely read next.
      if (off > start(i) || end < ends[i]) this.#remember(ids[i], c);
      this.stats.bytesServed += end - off;
      return c.subarray(off - start(i), end - start(i));
    }
    if (this.#scratch.length < end - off) this.#scratch = new Uint8Array(end - off);
    const out = this.#scratch.subarray(0, end - off);
    let pos = off;
    while (pos < end) {
      const s = start(i);
      const take = Math.min(end, s + c.length) - pos;
      out.set(c.subarray(pos - s, pos - s + take), pos - off);
      if (pos > s || s + c.length > end) this.#remember(ids[i], c);
      pos += take;
      if (pos >= end) break;
      i++;
      if (i >= ids.length) this.#fail(n, new Error("file shorter than its size"));
      c = this.#chunk(n, ids[i]);
      if (ends.length <= i) {
        ends.push(ends[i - 1] + c.length);
        if (i === ids.length - 1 && ends[i] !== n.size) {
          this.#fail(n, new Error(`chunks add up to ${ends[i]} bytes, not ${n.size}`));
        }
      } else this.#checkSize(n, i, c);
    }
    this.stats.bytesServed += end - off;
    return out;
  }

  /** A chunk whose size was probed must have that size once verified. */
  #checkSize(n: Inode, i: number, c: Uint8Array): void {
    const ends = n.chunkEnds!;
    const want = ends[i] - (i ? ends[i - 1] : 0);
    if (c.length !== want) {
      this.#fail(n, new Error(`chunk ${n.chunkIds![i]} is ${c.length} bytes, expected ${want}`));
    }
  }

  /** The whole content of a file (overlay copy-up); throws EIO like {@link read}. */
  readAll(n: Inode, limit = n.size): Uint8Array {
    const out = new Uint8Array(Math.min(limit, n.size));
    let off = 0;
    while (off < out.length) {
      const part = this.read(n.ino, off, Math.min(1 << 20, out.length - off));
      if (part.length === 0) break;
      out.set(part, off);
      off += part.length;
    }
    return out;
  }
}
