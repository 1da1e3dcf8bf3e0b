/**
 * The filesystem operations of hd's FUSE server, as typed handlers of libfuse3's low-level API.
 *
 * This module exists to keep what each request means (lookup, getattr, readdir, read, write,
 * xattrs, …) apart from the bytes it is answered with (`wire.ts`) and from the session that mounts
 * and feeds requests (`fuse.ts`). {@link LowLevelOps} gives one signature per op hd implements,
 * with the argument list of `struct fuse_lowlevel_ops` as ffi/libfuse3.ts's `CALLBACKS` declares
 * it to Deno; {@link LowLevelOpsMatchFfi} fails to compile if the two ever differ, so the session
 * registers the handlers without a cast.
 *
 * Every handler replies before it returns (libfuse calls them synchronously from
 * `fuse_session_process_buf`). Reads come from a {@link Projection}; with an {@link Overlay} the
 * write ops go there, otherwise they answer EROFS. A thrown {@link FsError} becomes that errno;
 * anything else is logged and answered EIO.
 *
 * @example
 * ```ts
 * import { FuseOps } from "./ops.ts";
 * import { loadFuse } from "./fuse.ts";
 * import type { Projection } from "./projected.ts";
 * declare const fs: Projection;
 * const lib = loadFuse();
 * const log = (line: string) => console.error(line);
 * const counts: Record<string, number> = {};
 * const ops = new FuseOps({ lib, fs, overlay: null, timeout: 86400, xattrs: false, log, counts });
 * const table = ops.table(); // what the session registers as callbacks
 * ```
 * @module
 */
import { type CALLBACKS, LAYOUT, type Libfuse3, num } from "../../ffi/libfuse3.ts";

/** `struct fuse_forget_data` (forget_multi). */
const FORGET = LAYOUT.forget;
import { S_IFDIR, S_IFMT } from "../sys/mode.ts";
import type { Overlay } from "./overlay.ts";
import { Errno, FsError, type Inode, type Projection } from "./projected.ts";
import {
  cstr,
  decodeCtx,
  decodeSetattr,
  encodeEntryParam,
  encodeStat,
  encodeStatvfs,
  encodeXattrNames,
  fileInfoFh,
  fileInfoFlags,
  FUSE_CTX,
  FUSE_ENTRY_PARAM,
  FUSE_FILE_INFO,
  FUSE_FILE_INFO_BITS,
  putDirent,
  putDirentPlus,
  setFileInfoBits,
  setFileInfoFh,
  STAT,
  type WireBuffer,
  wireBuffer,
} from "./wire.ts";

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;

/** `fuse_req_t`: the request; exactly one fuse_reply_* call answers it. */
export type Req = Deno.PointerValue;
/** A pointer argument: `const char *`, `struct fuse_file_info *`, `struct stat *`, … */
export type Ptr = Deno.PointerValue;
/** `fuse_ino_t`, `size_t`, `off_t`, `uint64_t`: 64-bit integers, which Deno passes as bigint. */
export type U64 = bigint;

/**
 * The low-level ops hd implements, one signature each, in the argument order of
 * `struct fuse_lowlevel_ops` (fuse_lowlevel.h). Optional ops are left out of the table when the
 * mount does not want them (the kernel then gets ENOSYS and stops asking).
 */
export interface LowLevelOps {
  /** `lookup(req, fuse_ino_t parent, const char *name)` */
  lookup: (req: Req, parent: U64, name: Ptr) => void;
  /** `forget(req, fuse_ino_t ino, uint64_t nlookup)` */
  forget: (req: Req, ino: U64, nlookup: U64) => void;
  /** `forget_multi(req, size_t count, struct fuse_forget_data *forgets)` */
  forget_multi: (req: Req, count: U64, forgets: Ptr) => void;
  /** `getattr(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  getattr: (req: Req, ino: U64, fi: Ptr) => void;
  /** `setattr(req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)` */
  setattr: (req: Req, ino: U64, attr: Ptr, toSet: number, fi: Ptr) => void;
  /** `readlink(req, fuse_ino_t ino)` */
  readlink: (req: Req, ino: U64) => void;
  /** `mkdir(req, fuse_ino_t parent, const char *name, mode_t mode)` */
  mkdir: (req: Req, parent: U64, name: Ptr, mode: number) => void;
  /** `unlink(req, fuse_ino_t parent, const char *name)` */
  unlink: (req: Req, parent: U64, name: Ptr) => void;
  /** `rmdir(req, fuse_ino_t parent, const char *name)` */
  rmdir: (req: Req, parent: U64, name: Ptr) => void;
  /** `symlink(req, const char *link, fuse_ino_t parent, const char *name)` */
  symlink: (req: Req, link: Ptr, parent: U64, name: Ptr) => void;
  /** `rename(req, parent, const char *name, newparent, const char *newname, unsigned flags)` */
  rename: (
    req: Req,
    parent: U64,
    name: Ptr,
    newParent: U64,
    newName: Ptr,
    flags: number,
  ) => void;
  /** `open(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  open: (req: Req, ino: U64, fi: Ptr) => void;
  /** `read(req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)` */
  read: (req: Req, ino: U64, size: U64, off: U64, fi: Ptr) => void;
  /** `write(req, ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)` */
  write: (req: Req, ino: U64, buf: Ptr, size: U64, off: U64, fi: Ptr) => void;
  /** `flush(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  flush: (req: Req, ino: U64, fi: Ptr) => void;
  /** `release(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  release: (req: Req, ino: U64, fi: Ptr) => void;
  /** `fsync(req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)` */
  fsync: (req: Req, ino: U64, datasync: number, fi: Ptr) => void;
  /** `opendir(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  opendir: (req: Req, ino: U64, fi: Ptr) => void;
  /** `readdir(req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)` */
  readdir: (req: Req, ino: U64, size: U64, off: U64, fi: Ptr) => void;
  /** `readdirplus(req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)` */
  readdirplus: (req: Req, ino: U64, size: U64, off: U64, fi: Ptr) => void;
  /** `releasedir(req, fuse_ino_t ino, struct fuse_file_info *fi)` */
  releasedir: (req: Req, ino: U64, fi: Ptr) => void;
  /** `statfs(req, fuse_ino_t ino)` */
  statfs: (req: Req, ino: U64) => void;
  /** `create(req, parent, const char *name, mode_t mode, struct fuse_file_info *fi)` */
  create: (req: Req, parent: U64, name: Ptr, mode: number, fi: Ptr) => void;
  /** `getxattr(req, fuse_ino_t ino, const char *name, size_t size)`; only with `xattrs`. */
  getxattr?: (req: Req, ino: U64, name: Ptr, size: U64) => void;
  /** `listxattr(req, fuse_ino_t ino, size_t size)`; only with `xattrs`. */
  listxattr?: (req: Req, ino: U64, size: U64) => void;
}

/** The name of an op ffi/libfuse3.ts declares a callback signature for. */
export type OpName = keyof typeof CALLBACKS;

/** The JS function type Deno calls for op `K`, derived from its `CALLBACKS` definition. */
export type FfiCallback<K extends OpName> = Deno.UnsafeCallbackFunction<
  (typeof CALLBACKS)[K]["parameters"],
  (typeof CALLBACKS)[K]["result"]
>;

/** Any subset of the ops, each typed as Deno calls it: what the session registers. */
export type FfiOps = { [K in OpName]?: FfiCallback<K> };

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;

/**
 * `true`, checked at compile time: every signature of {@link LowLevelOps} is exactly the one
 * `CALLBACKS` declares for that op (same arity, same argument types).
 */
export type LowLevelOpsMatchFfi = Expect<
  Same<Required<LowLevelOps>, { [K in keyof LowLevelOps]-?: FfiCallback<K> }>
>;

/** What a {@link FuseOps} serves and where it reports. */
export interface OpsOptions {
  /** The opened libfuse3 (the fuse_reply_* calls). */
  lib: Libfuse3;
  /** The tree served. */
  fs: Projection;
  /** The write overlay; null for a read-only mount. */
  overlay: Overlay | null;
  /** Seconds the kernel may cache attributes and entries. */
  timeout: number;
  /** Include getxattr/listxattr in the table. */
  xattrs: boolean;
  /** Where unexpected errors are logged. */
  log: (line: string) => void;
  /** Requests served, by op name; incremented in place. */
  counts: Record<string, number>;
  /** When set, the milliseconds spent in each op (JS handler and its reply), added in place. */
  times?: Record<string, number> | null;
}

/**
 * Subdirectories whose Dir nodes readdirplus may read to fill in their attributes; past this many
 * unread ones it sends them as name and type only. Measured on a cold node_modules (10
 * alternated runs, load ~4.5): reading them all made `find` 118 ms vs 190 ms when every one was
 * left to a lookup (one round trip each), but the first `ls` of its root (168 packages) waited
 * for 168 node reads (mount → serving 296 vs 243 ms).
 */
export const EAGER_SUBDIRS = 32;

/** True when `list` (a readdir listing) has more than {@link EAGER_SUBDIRS} unread subdirectories. */
export function lazySubdirs(list: readonly Inode[]): boolean {
  let unread = 0;
  for (let i = 2; i < list.length; i++) {
    const n = list[i];
    if ((n.mode & S_IFMT) === S_IFDIR && n.children === null && n.lowerDir) {
      if (++unread > EAGER_SUBDIRS) return true;
    }
  }
  return false;
}

/** The handlers of one mount, with their state (open directory handles, reply buffers). */
export class FuseOps {
  readonly #L: Libfuse3["symbols"];
  readonly #fs: Projection;
  readonly #overlay: Overlay | null;
  readonly #timeout: number;
  readonly #xattrs: boolean;
  readonly #log: (line: string) => void;
  readonly #counts: Record<string, number>;
  readonly #times: Record<string, number> | null;
  #stat: WireBuffer = wireBuffer(STAT.sizeof);
  #entry: WireBuffer = wireBuffer(FUSE_ENTRY_PARAM.sizeof);
  #dir: WireBuffer = wireBuffer(0);
  #dirHandles = new Map<number, Inode[]>();
  /** Each directory's readdir listing, for as long as its entries stay loaded. */
  #listings = new WeakMap<Map<string, Inode>, Inode[]>();
  #nextFh = 1;
  #warm: Generator<void, void> | null = null;
  /** A getxattr or listxattr came: the proof that the tree holds none is to be run. */
  #xattrAsked = false;

  /** Handlers over `o.fs` (and `o.overlay`); nothing is registered until the session does. */
  constructor(o: OpsOptions) {
    this.#L = o.lib.symbols;
    this.#fs = o.fs;
    this.#overlay = o.overlay;
    this.#timeout = o.timeout;
    this.#xattrs = o.xattrs;
    this.#log = o.log;
    this.#counts = o.counts;
    this.#times = o.times ?? null;
  }

  // ---- helpers ----

  #fillStat(n: Inode): Uint8Array<ArrayBuffer> {
    encodeStat(this.#stat, 0, n, this.#fs.nlink(n));
    return this.#stat.bytes;
  }

  #fillEntry(n: Inode | null): Uint8Array<ArrayBuffer> {
    encodeEntryParam(this.#entry, n, n ? this.#fs.nlink(n) : 0, this.#timeout);
    return this.#entry.bytes;
  }

  #fi(fi: Ptr): DataView {
    return new DataView(Deno.UnsafePointerView.getArrayBuffer(fi!, FUSE_FILE_INFO.sizeof));
  }

  #ctx(req: Req): { uid: number; gid: number } {
    const p = this.#L.fuse_req_ctx(req);
    if (!p) return { uid: 0, gid: 0 };
    return decodeCtx(new DataView(Deno.UnsafePointerView.getArrayBuffer(p, FUSE_CTX.sizeof)));
  }

  /** The entries readdir walks: the open handle's snapshot (rw), else the inode's listing. */
  #listing(ino: number, fi: Ptr): Inode[] {
    if (this.#overlay) {
      // rw: the handle's snapshot. Read-only mounts have no handles (OPENDIR answers ENOSYS), so
      // they skip mapping the fuse_file_info (an ArrayBuffer over C memory per request).
      const fh = fi ? fileInfoFh(this.#fi(fi)) : 0;
      const h = fh ? this.#dirHandles.get(fh) : undefined;
      if (h) return h;
      throw new FsError(Errno.EBADF);
    }
    const d = this.#fs.inode(ino);
    if ((d.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
    const of = this.#fs.children(d);
    // kept with the directory's entries: an unloaded directory's listing goes with them
    let list = this.#listings.get(of);
    if (!list) this.#listings.set(of, list = [d, d.parent, ...of.values()]);
    return list;
  }

  /**
   * One step of the work the first listing of the root asks for, for the serve loop to do while
   * no request waits (the mount is announced, its user has not listed it yet): first the root's
   * entries, then, one a step, the Dir node of each subdirectory that readdirplus would describe
   * in full (none when more than {@link EAGER_SUBDIRS} are unread: it then sends names only).
   * False once nothing is left; a node that cannot be read ends it (the request that needs it
   * reports the error).
   */
  warmStep(): boolean {
    this.#warm ??= this.#warmSteps();
    try {
      return !this.#warm.next().done;
    } catch {
      return false;
    }
  }

  /**
   * One step of the proof that the tree holds no extended attribute (Projection.proveXattrsStep),
   * for the serve loop to do while no request waits, once a getxattr or listxattr has come (an
   * overlayfs lower layer, whose every lookup asks); false when there is nothing to do.
   */
  proveStep(): boolean {
    return this.#xattrAsked && this.#fs.proveXattrsStep();
  }

  /**
   * Whether an xattr request gets ENOSYS: once the tree is proven to hold no extended attribute
   * (read-only mounts; the kernel then stops asking this mount, and its callers see "not
   * supported", which is what a tree without any means to overlayfs and to exec's capability
   * check); else the request starts the proof and is answered from the nodes.
   */
  #xattrsGone(): boolean {
    if (this.#overlay) return false;
    this.#xattrAsked = true;
    return this.#fs.xattrFree() === true;
  }

  *#warmSteps(): Generator<void, void> {
    const fs = this.#fs;
    const root = fs.root;
    const list = this.#overlay
      ? [root, root, ...fs.children(root).values()]
      : this.#listing(1, null);
    yield;
    if (lazySubdirs(list)) return;
    for (const n of list.slice(2)) {
      if ((n.mode & S_IFMT) !== S_IFDIR || n.children !== null || !n.lowerDir) continue;
      fs.getattr(n.ino);
      yield;
    }
  }

  #rw(): Overlay {
    if (!this.#overlay) throw new FsError(Errno.EROFS);
    return this.#overlay;
  }

  /**
   * Wraps an op: counts it (and times it with {@link OpsOptions.times}), and turns a thrown
   * FsError (or any error) into fuse_reply_err. The wrapper takes its arguments one by one (no
   * rest array and spread call per request: the server runs these cold, in a fresh process).
   */
  #op<A extends unknown[]>(
    name: string,
    fn: (req: Req, ...a: A) => void,
  ): (req: Req, ...a: A) => void {
    const L = this.#L;
    const counts = this.#counts;
    const times = this.#times;
    // five arguments after req are passed on (the most any low-level op has: write, rename)
    if (fn.length > 6) throw new Error(`Cannot register ${name}: more arguments than #op passes`);
    const f = fn as unknown as (
      req: Req,
      a: unknown,
      b: unknown,
      c: unknown,
      d: unknown,
      e: unknown,
    ) => void;
    const wrapped = (req: Req, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) => {
      counts[name] = (counts[name] ?? 0) + 1;
      const t0 = times ? performance.now() : 0;
      try {
        f(req, a, b, c, d, e);
      } catch (err) {
        if (err instanceof FsError) L.fuse_reply_err(req, err.errno);
        else {
          this.#log(`hd mount: ${name} failed: ${(err as Error).stack ?? err}`);
          L.fuse_reply_err(req, Errno.EIO);
        }
      }
      if (times) times[name] = (times[name] ?? 0) + performance.now() - t0;
    };
    return wrapped as unknown as (req: Req, ...a: A) => void;
  }

  // Readdir replies are encoded in the kernel's wire format (struct fuse_dirent /
  // fuse_direntplus, what fuse_add_direntry[_plus] writes) into one reused buffer: one FFI call
  // per request instead of one per entry, and no per-entry allocations.
  #readdir(plus: boolean): (req: Req, ino: U64, size: U64, off: U64, fi: Ptr) => void {
    const name = plus ? "readdirplus" : "readdir";
    return this.#op(name, (req: Req, ino: U64, size: U64, off: U64, fi: Ptr) => {
      const fs = this.#fs;
      const list = this.#listing(num(ino), fi);
      const lazy = plus && lazySubdirs(list);
      const cap = num(size);
      if (this.#dir.bytes.length < cap) this.#dir = wireBuffer(cap);
      const w = this.#dir;
      let pos = 0;
      for (let i = num(off); i < list.length; i++) {
        const n = list[i];
        const nm = i === 0 ? "." : i === 1 ? ".." : n.name;
        let next: number;
        if (plus) {
          // A subdirectory's own attributes live in its Dir node. In a directory with many unread
          // subdirectories (`ls` of a node_modules: hundreds), send their name and type only: the
          // kernel looks one up (and its node is read) when it is used.
          // `.` and `..` go as name and type only: the kernel ignores their attributes
          // (fuse_direntplus_link), so their nlink (a count over the directory) is not worked out.
          const full = i > 1 && (!lazy || n.children !== null || !n.lowerDir);
          if (full && (n.mode & S_IFMT) === S_IFDIR) fs.getattr(n.ino); // reads its Dir node
          next = putDirentPlus(
            w,
            pos,
            cap,
            nm,
            n,
            full ? fs.nlink(n) : 0,
            i + 1,
            this.#timeout,
            full,
          );
          // the kernel takes a reference for each entry sent with its attributes
          if (next >= 0 && full) fs.remember(n);
        } else next = putDirent(w, pos, cap, nm, n.ino, i + 1, n.mode);
        if (next < 0) break;
        pos = next;
      }
      this.#L.fuse_reply_buf(req, w.bytes.subarray(0, pos), BigInt(pos));
    });
  }

  /** The handlers, ready to be registered (see {@link LowLevelOps} for which are included). */
  table(): LowLevelOps {
    const L = this.#L;
    const fs = this.#fs;
    const timeout = this.#timeout;
    const name = (p: Ptr) => Deno.UnsafePointerView.getCString(p!);
    const replyEntry = (req: Req, n: Inode) => {
      fs.remember(n);
      L.fuse_reply_entry(req, this.#fillEntry(n));
    };

    const ops: LowLevelOps = {
      lookup: this.#op("lookup", (req: Req, parent: U64, nameP: Ptr) => {
        let n: Inode;
        try {
          n = fs.lookup(num(parent), name(nameP));
        } catch (e) {
          if (e instanceof FsError && e.errno === Errno.ENOENT && !this.#overlay) {
            // Negative entry: the kernel remembers the miss (the tree cannot change).
            L.fuse_reply_entry(req, this.#fillEntry(null));
            return;
          }
          throw e;
        }
        replyEntry(req, n);
      }),
      forget: (req: Req, ino: U64, nlookup: U64) => {
        fs.forget(num(ino), num(nlookup));
        L.fuse_reply_none(req);
      },
      forget_multi: (req: Req, count: U64, forgets: Ptr) => {
        const k = num(count);
        if (k > 0 && forgets) {
          const v = new DataView(Deno.UnsafePointerView.getArrayBuffer(forgets, k * FORGET.size));
          for (let i = 0; i < k; i++) {
            const o = i * FORGET.size;
            fs.forget(
              Number(v.getBigUint64(o + FORGET.ino, true)),
              Number(v.getBigUint64(o + FORGET.nlookup, true)),
            );
          }
        }
        L.fuse_reply_none(req);
      },
      getattr: this.#op("getattr", (req: Req, ino: U64) => {
        L.fuse_reply_attr(req, this.#fillStat(fs.getattr(num(ino))), timeout);
      }),
      setattr: this.#op("setattr", (req: Req, ino: U64, attr: Ptr, toSet: number) => {
        const ov = this.#rw();
        const st = new DataView(Deno.UnsafePointerView.getArrayBuffer(attr!, STAT.sizeof));
        const s = decodeSetattr(st, toSet, Math.floor(Date.now() / 1000));
        const i = num(ino);
        if (s.size !== null) ov.truncate(i, s.size);
        if (Object.keys(s.attrs).length) ov.setattr(i, s.attrs);
        L.fuse_reply_attr(req, this.#fillStat(fs.getattr(i)), timeout);
      }),
      readlink: this.#op("readlink", (req: Req, ino: U64) => {
        L.fuse_reply_readlink(req, cstr(fs.readlink(num(ino))));
      }),
      open: this.#op("open", (req: Req, ino: U64, fi: Ptr) => {
        // Read-only: ENOSYS tells the kernel to stop sending OPEN and RELEASE for files; it then
        // keeps their page cache (FOPEN_KEEP_CACHE is its default without open).
        if (!this.#overlay) throw new FsError(Errno.ENOSYS);
        const n = fs.inode(num(ino));
        if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
        const fiv = this.#fi(fi);
        const flags = fileInfoFlags(fiv);
        if ((flags & O_ACCMODE) !== 0 && !this.#overlay) throw new FsError(Errno.EROFS);
        // libfuse asks for atomic O_TRUNC: the truncation of `> file` arrives here, not in setattr.
        if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0) this.#rw().truncate(n.ino, 0);
        setFileInfoBits(fiv, [FUSE_FILE_INFO_BITS.keep_cache]);
        L.fuse_reply_open(req, fi);
      }),
      read: this.#op("read", (req: Req, ino: U64, size: U64, off: U64) => {
        const bytes = fs.read(num(ino), num(off), num(size));
        L.fuse_reply_buf(req, bytes, BigInt(bytes.length));
      }),
      write: this.#op("write", (req: Req, ino: U64, buf: Ptr, size: U64, off: U64) => {
        const ov = this.#rw();
        const n = num(size);
        const bytes = n
          ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf!, n))
          : new Uint8Array(0);
        L.fuse_reply_write(req, BigInt(ov.write(num(ino), num(off), bytes)));
      }),
      // Nothing to flush (reads come from the store, writes go to memory): ENOSYS makes the
      // kernel stop sending FLUSH on every close().
      flush: this.#op("flush", (req: Req) => L.fuse_reply_err(req, Errno.ENOSYS)),
      release: this.#op("release", (req: Req) => L.fuse_reply_err(req, 0)),
      fsync: this.#op("fsync", (req: Req) => L.fuse_reply_err(req, 0)),
      opendir: this.#op("opendir", (req: Req, ino: U64, fi: Ptr) => {
        // Read-only: likewise no OPENDIR/RELEASEDIR; readdir lists the inode (cached listing).
        if (!this.#overlay) throw new FsError(Errno.ENOSYS);
        const d = fs.inode(num(ino));
        if ((d.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
        const list = [d, d.parent, ...fs.children(d).values()];
        const fh = this.#nextFh++;
        this.#dirHandles.set(fh, list);
        const fiv = this.#fi(fi);
        setFileInfoFh(fiv, fh);
        if (!this.#overlay) {
          setFileInfoBits(fiv, [FUSE_FILE_INFO_BITS.keep_cache, FUSE_FILE_INFO_BITS.cache_readdir]);
        }
        L.fuse_reply_open(req, fi);
      }),
      readdir: this.#readdir(false),
      readdirplus: this.#readdir(true),
      releasedir: this.#op("releasedir", (req: Req, _ino: U64, fi: Ptr) => {
        this.#dirHandles.delete(fileInfoFh(this.#fi(fi)));
        L.fuse_reply_err(req, 0);
      }),
      statfs: this.#op("statfs", (req: Req) => {
        const free = this.#overlay ? Math.floor(Deno.systemMemoryInfo().available / 4096) : 0;
        L.fuse_reply_statfs(req, encodeStatvfs(free, fs.stats.inodes));
      }),
      create: this.#op("create", (req: Req, parent: U64, nameP: Ptr, mode: number, fi: Ptr) => {
        const c = this.#ctx(req);
        const n = this.#rw().create(num(parent), name(nameP), mode, c.uid, c.gid);
        L.fuse_reply_create(req, this.#fillEntry(n), fi);
      }),
      mkdir: this.#op("mkdir", (req: Req, parent: U64, nameP: Ptr, mode: number) => {
        const c = this.#ctx(req);
        replyEntry(req, this.#rw().mkdir(num(parent), name(nameP), mode, c.uid, c.gid));
      }),
      symlink: this.#op("symlink", (req: Req, link: Ptr, parent: U64, nameP: Ptr) => {
        const c = this.#ctx(req);
        replyEntry(req, this.#rw().symlink(num(parent), name(nameP), name(link), c.uid, c.gid));
      }),
      unlink: this.#op("unlink", (req: Req, parent: U64, nameP: Ptr) => {
        this.#rw().unlink(num(parent), name(nameP));
        L.fuse_reply_err(req, 0);
      }),
      rmdir: this.#op("rmdir", (req: Req, parent: U64, nameP: Ptr) => {
        this.#rw().rmdir(num(parent), name(nameP));
        L.fuse_reply_err(req, 0);
      }),
      rename: this.#op(
        "rename",
        (req: Req, parent: U64, nameP: Ptr, newParent: U64, newName: Ptr, flags: number) => {
          this.#rw().rename(num(parent), name(nameP), num(newParent), name(newName), flags);
          L.fuse_reply_err(req, 0);
        },
      ),
    };
    if (this.#xattrs) {
      ops.getxattr = this.#op("getxattr", (req: Req, ino: U64, nameP: Ptr, size: U64) => {
        if (this.#xattrsGone()) throw new FsError(Errno.ENOSYS);
        const want = name(nameP);
        const v = fs.xattrs(num(ino)).find(([k]) => k === want)?.[1];
        if (v === undefined) throw new FsError(Errno.ENODATA);
        const cap = num(size);
        if (cap === 0) L.fuse_reply_xattr(req, BigInt(v.length));
        else if (cap < v.length) throw new FsError(Errno.ERANGE);
        else L.fuse_reply_buf(req, new Uint8Array(v), BigInt(v.length));
      });
      ops.listxattr = this.#op("listxattr", (req: Req, ino: U64, size: U64) => {
        if (this.#xattrsGone()) throw new FsError(Errno.ENOSYS);
        const names = encodeXattrNames(fs.xattrs(num(ino)).map(([k]) => k));
        const cap = num(size);
        if (cap === 0) L.fuse_reply_xattr(req, BigInt(names.length));
        else if (cap < names.length) throw new FsError(Errno.ERANGE);
        else L.fuse_reply_buf(req, names, BigInt(names.length));
      });
    }
    return ops;
  }
}
