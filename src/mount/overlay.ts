/**
 * An in-memory write overlay over a {@link Projection}: create, write, truncate, chmod, mkdir,
 * symlink, unlink, rmdir and rename change the mounted view without touching the stored tree.
 *
 * Changes live on the projection's inodes: a written file holds its bytes in `data` (a stored
 * file is copied up on its first write), a changed directory's `children` map is the merged view
 * and `whiteouts` names the stored entries removed from it. Every change marks the inode and its
 * ancestors `dirty`, so {@link Overlay.snapshot} rebuilds only those directories and reuses the
 * stored ids of every untouched subtree.
 *
 * @example
 * ```ts
 * import { Overlay } from "./overlay.ts";
 * import type { Projection } from "./projected.ts";
 * declare const projection: Projection;
 * const ov = new Overlay(projection);
 * const f = ov.create(1, "new.txt", 0o100644);
 * ov.write(f.ino, 0, new TextEncoder().encode("hi"));
 * const newRoot = await ov.snapshot();
 * ```
 * @module
 */
import { putNode } from "../dag/dag.ts";
import { compareNames, type DirEntry, type DirNode, type FileNode } from "../dag/node.ts";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { ingestBytes } from "../scan/ingest.ts";
import { Errno, FsError, type Inode, type Projection } from "./projected.ts";

/** rename(2) flags. */
export const RENAME_NOREPLACE = 1;
/** rename(2) flag RENAME_EXCHANGE (not supported: EINVAL). */
export const RENAME_EXCHANGE = 2;

const MAX_NAME = 255;

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Counts of what the overlay holds, for `hd snapshot` and status. */
export interface OverlaySummary {
  /** Files whose bytes are held in memory. */
  files: number;
  /** Bytes held in memory. */
  bytes: number;
  /** Stored entries removed (whiteouts). */
  whiteouts: number;
}

/** The write overlay of a mount. */
export class Overlay {
  readonly fs: Projection;

  constructor(fs: Projection) {
    this.fs = fs;
  }

  #markDirty(n: Inode): void {
    for (let c = n;; c = c.parent) {
      c.dirty = true;
      if (c.ino === 1) break;
    }
  }

  #checkName(name: string): void {
    if (name.length === 0 || name === "." || name === ".." || name.includes("/")) {
      throw new FsError(Errno.EINVAL);
    }
    if (new TextEncoder().encode(name).length > MAX_NAME) throw new FsError(Errno.ENAMETOOLONG);
  }

  #dir(ino: number): Inode {
    const d = this.fs.inode(ino);
    if ((d.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
    return d;
  }

  #add(parent: Inode, name: string, fields: Partial<Inode>): Inode {
    this.#checkName(name);
    const kids = this.fs.children(parent);
    if (kids.has(name)) throw new FsError(Errno.EEXIST);
    const n = this.fs.newInode(parent, name, { mtime: nowSeconds(), ...fields });
    if ((n.mode & S_IFMT) === S_IFDIR) n.children = new Map();
    kids.set(name, n);
    parent.mtime = nowSeconds();
    this.#markDirty(n);
    return n;
  }

  /** Creates an empty regular file. */
  create(parent: number, name: string, mode: number, uid?: number, gid?: number): Inode {
    return this.#add(this.#dir(parent), name, {
      mode: S_IFREG | (mode & 0o7777),
      data: new Uint8Array(0),
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
    });
  }

  /** Creates a directory. */
  mkdir(parent: number, name: string, mode: number, uid?: number, gid?: number): Inode {
    return this.#add(this.#dir(parent), name, {
      mode: S_IFDIR | (mode & 0o7777),
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
    });
  }

  /** Creates a symlink. */
  symlink(parent: number, name: string, target: string, uid?: number, gid?: number): Inode {
    return this.#add(this.#dir(parent), name, {
      mode: S_IFLNK | 0o777,
      target,
      size: new TextEncoder().encode(target).length,
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
    });
  }

  /** Makes sure `n` holds its bytes in memory (copy-up), with room for `cap` bytes. */
  #copyUp(n: Inode, cap: number, keep = n.size): void {
    if ((n.mode & S_IFMT) !== S_IFREG) throw new FsError(Errno.EINVAL);
    if (!n.data) {
      const have = n.lower ? this.fs.readAll(n, Math.min(keep, n.size)) : new Uint8Array(0);
      const buf = new Uint8Array(Math.max(cap, have.length, 4096));
      buf.set(have);
      n.data = buf;
      n.lower = undefined;
      n.chunkIds = n.chunkEnds = undefined;
    } else if (n.data.length < cap) {
      const buf = new Uint8Array(Math.max(cap, n.data.length * 2));
      buf.set(n.data.subarray(0, n.size));
      n.data = buf;
    }
  }

  /** Writes `bytes` at `off`; returns the count written. */
  write(ino: number, off: number, bytes: Uint8Array): number {
    const n = this.fs.inode(ino);
    if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
    const end = off + bytes.length;
    this.#copyUp(n, end);
    n.data!.set(bytes, off);
    if (end > n.size) n.size = end;
    n.mtime = nowSeconds();
    this.#markDirty(n);
    return bytes.length;
  }

  /** Sets a file's size (cutting or zero-extending it). */
  truncate(ino: number, size: number): void {
    const n = this.fs.inode(ino);
    if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
    if (size < 0) throw new FsError(Errno.EINVAL);
    if (size === n.size && (n.data || n.lower?.size === size)) return;
    this.#copyUp(n, size, size);
    if (size < n.size) n.data!.fill(0, size, n.size);
    n.size = size;
    n.mtime = nowSeconds();
    this.#markDirty(n);
  }

  /** Changes permission bits, owner or mtime (seconds). */
  setattr(ino: number, a: { mode?: number; uid?: number; gid?: number; mtime?: number }): void {
    const n = this.fs.getattr(ino);
    if (a.mode !== undefined) n.mode = (n.mode & S_IFMT) | (a.mode & 0o7777);
    if (a.uid !== undefined) n.uid = a.uid;
    if (a.gid !== undefined) n.gid = a.gid;
    if (a.mtime !== undefined) n.mtime = a.mtime;
    this.#markDirty(n);
  }

  #remove(parent: Inode, name: string, n: Inode): void {
    this.fs.children(parent).delete(name);
    if (parent.lowerDir) (parent.whiteouts ??= new Set()).add(name);
    parent.mtime = nowSeconds();
    this.#markDirty(parent);
    n.unlinked = true;
  }

  /** Removes a file or symlink. Returns the inode (still readable while open). */
  unlink(parent: number, name: string): Inode {
    const d = this.#dir(parent);
    const n = this.fs.children(d).get(name);
    if (!n) throw new FsError(Errno.ENOENT);
    if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
    this.#remove(d, name, n);
    return n;
  }

  /** Removes an empty directory. */
  rmdir(parent: number, name: string): void {
    const d = this.#dir(parent);
    const n = this.fs.children(d).get(name);
    if (!n) throw new FsError(Errno.ENOENT);
    if ((n.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
    if (this.fs.children(n).size > 0) throw new FsError(Errno.ENOTEMPTY);
    this.#remove(d, name, n);
  }

  /** Renames (moves) an entry; `flags` may hold RENAME_NOREPLACE. Returns a replaced inode. */
  rename(
    parent: number,
    name: string,
    newParent: number,
    newName: string,
    flags = 0,
  ): Inode | null {
    if (flags & ~RENAME_NOREPLACE) throw new FsError(Errno.EINVAL);
    this.#checkName(newName);
    const from = this.#dir(parent);
    const to = this.#dir(newParent);
    const n = this.fs.children(from).get(name);
    if (!n) throw new FsError(Errno.ENOENT);
    const isDir = (x: Inode) => (x.mode & S_IFMT) === S_IFDIR;
    if (isDir(n)) {
      for (let c = to;; c = c.parent) {
        if (c === n) throw new FsError(Errno.EINVAL);
        if (c.ino === 1) break;
      }
    }
    const old = this.fs.children(to).get(newName) ?? null;
    if (old === n) return null;
    if (old) {
      if (flags & RENAME_NOREPLACE) throw new FsError(Errno.EEXIST);
      if (isDir(n) && !isDir(old)) throw new FsError(Errno.ENOTDIR);
      if (!isDir(n) && isDir(old)) throw new FsError(Errno.EISDIR);
      if (isDir(old) && this.fs.children(old).size > 0) throw new FsError(Errno.ENOTEMPTY);
      this.#remove(to, newName, old);
    }
    this.fs.children(from).delete(name);
    if (from.lowerDir) (from.whiteouts ??= new Set()).add(name);
    from.mtime = to.mtime = nowSeconds();
    this.#markDirty(from);
    n.parent = to;
    n.name = newName;
    this.fs.children(to).set(newName, n);
    this.#markDirty(n);
    return old;
  }

  /** What the overlay holds now. */
  summary(): OverlaySummary {
    const s: OverlaySummary = { files: 0, bytes: 0, whiteouts: 0 };
    const walk = (d: Inode) => {
      s.whiteouts += d.whiteouts?.size ?? 0;
      for (const c of d.children?.values() ?? []) {
        if (!c.dirty) continue;
        if (c.data) (s.files++, s.bytes += c.size);
        if ((c.mode & S_IFMT) === S_IFDIR) walk(c);
      }
    };
    if (this.fs.root.dirty) walk(this.fs.root);
    return s;
  }

  /**
   * Stores the mounted view (tree + overlay) and returns the id of its root Dir node. Untouched
   * subtrees keep their stored ids; only dirty directories are re-encoded. Hold the store's
   * shared lock around this (gc must not sweep the new objects before a ref names them).
   */
  snapshot(): string {
    const store = this.fs.store;
    const fileNode = (c: Inode): FileNode => {
      const meta = c.lower && c.lower.uid !== undefined
        ? { uid: c.uid, gid: c.gid, mtime: c.mtime }
        : {};
      if ((c.mode & S_IFMT) === S_IFLNK) {
        return { type: "file", mode: c.mode, size: c.size, target: c.target ?? "", ...meta };
      }
      if (c.data) {
        return { ...ingestBytes(store, c.data.subarray(0, c.size), c.mode), ...meta };
      }
      if (c.lower) return { ...c.lower, mode: c.mode, ...meta };
      return { ...ingestBytes(store, new Uint8Array(0), c.mode), ...meta };
    };
    const dirId = (d: Inode): string => {
      if (!d.dirty && d.lowerDir) return d.lowerDir;
      const kids = this.fs.children(d);
      const names = [...kids.keys()].sort(compareNames);
      const entries: DirEntry[] = names.map((name) => {
        const c = kids.get(name)!;
        return (c.mode & S_IFMT) === S_IFDIR
          ? { name, dir: dirId(c) }
          : { name, file: c.dirty || !c.lower ? fileNode(c) : c.lower };
      });
      const node: DirNode = { type: "dir", mode: d.mode, entries };
      if (d.hasMeta) {
        Object.assign(node, { uid: d.uid, gid: d.gid, mtime: d.mtime });
      }
      return putNode(store, node);
    };
    return dirId(this.fs.root);
  }
}
