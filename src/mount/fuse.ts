/**
 * The FUSE server: a libfuse3 low-level session driven from Deno.
 *
 * `fuse_session_receive_buf` runs on a worker thread (a nonblocking FFI call, so the event loop
 * stays free); each request is then handed to `fuse_session_process_buf` on the JS thread, which
 * calls the op callbacks below synchronously, and every op replies before returning. Reads come
 * from a {@link Projection} (lazy, verified); with `rw` the write ops go to an {@link Overlay},
 * otherwise the mount is read-only (the kernel answers EROFS).
 *
 * Immutable trees are mounted with long attribute/entry timeouts, keep_cache and cached readdir,
 * so repeated stats and reads are served by the kernel's caches.
 *
 * @example
 * ```ts
 * import { FuseServer } from "./fuse.ts";
 * const srv = new FuseServer(projection, null, { mountpoint: "/mnt/x" });
 * srv.mount();
 * await srv.serve(); // until unmounted or srv.stop()
 * ```
 * @module
 */
import {
  CALLBACKS,
  FUSE_SET_ATTR,
  LAYOUT,
  type Libfuse3,
  num,
  openLibfuse3,
} from "../../ffi/libfuse3.ts";
import {
  EAGAIN,
  F_GETFL,
  F_SETFL,
  type Libc,
  O_NONBLOCK,
  openLibc,
  POLLFD_SIZE,
  POLLIN,
} from "../../ffi/libc.ts";
import { HdError } from "../cas/errors.ts";
import { S_IFDIR, S_IFMT } from "../dag/node.ts";
import type { Overlay } from "./overlay.ts";
import { Errno, FsError, type Inode, type Projection } from "./projected.ts";

const EINTR = 4;
/** After this long (ms) without requests the loop sleeps in poll() on a worker thread. */
const ACTIVE_MS = 1000;
/** While active, the loop waits for the next request on its own thread in slices of this (ms). */
const POLL_SLICE_MS = 10;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const enc = new TextEncoder();

/** Options of a {@link FuseServer}. */
export interface FuseOptions {
  /** Absolute path of the directory to mount on. */
  mountpoint: string;
  /** Name shown in /proc/mounts (default `hd`). */
  fsname?: string;
  /** Let other users (and user namespaces) see the mount; default: when running as root. */
  allowOther?: boolean;
  /** Seconds the kernel may cache attributes and entries (default 86400 read-only, 1 rw). */
  timeout?: number;
  /** Where the server logs. */
  log?: (line: string) => void;
  /**
   * Answer getxattr/listxattr from the stored nodes (read-only; ENODATA when absent). Off by
   * default: without handlers the kernel learns ENOSYS once and stops asking, whereas with them
   * every overlayfs lookup on a projected lower layer (trusted.overlay.* probes) and every exec
   * (security.capability) costs a round trip to this server.
   */
  xattrs?: boolean;
}

/** Loads libfuse3 and checks /dev/fuse; throws one clear HdError naming the package. */
export function loadFuse(): Libfuse3 {
  try {
    Deno.statSync("/dev/fuse");
  } catch {
    throw new HdError(
      "Cannot mount: /dev/fuse is missing",
      "install fuse3 (`apt-get install fuse3`) and load the module (`modprobe fuse`); " +
        "in a container, pass --device /dev/fuse",
    );
  }
  try {
    return openLibfuse3();
  } catch (e) {
    throw new HdError(
      `Cannot mount: ${(e as Error).message}`,
      "install libfuse3 (`apt-get install fuse3 libfuse3-3`)",
    );
  }
}

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** sizeof(struct fuse_entry_out) in fuse_kernel.h. */
const ENTRY_OUT_SIZE = 128;
/** Offset of the name in struct fuse_dirent. */
const DIRENT_NAME = 24;
/** Offset of the name in struct fuse_direntplus (entry_out, then dirent). */
const DIRENTPLUS_NAME = ENTRY_OUT_SIZE + DIRENT_NAME;

/** Stores a non-negative integer below 2^53 as a little-endian u64, without a BigInt. */
function setU64(v: DataView, off: number, x: number): void {
  v.setUint32(off, x >>> 0, true);
  v.setUint32(off + 4, Math.floor(x / 4294967296) >>> 0, true);
}

// deno-lint-ignore no-explicit-any
type Cb = Deno.UnsafeCallback<any>;

/** A mounted FUSE session serving a projection (and, with rw, its overlay). */
export class FuseServer {
  readonly fs: Projection;
  readonly overlay: Overlay | null;
  readonly mountpoint: string;
  #lib: Libfuse3;
  #se: Deno.PointerValue = null;
  #callbacks: Cb[] = [];
  #keep: unknown[] = [];
  #timeout: number;
  #stat = new Uint8Array(LAYOUT.stat.size);
  #statView = new DataView(this.#stat.buffer);
  #entry = new Uint8Array(LAYOUT.entry.size);
  #entryView = new DataView(this.#entry.buffer);
  #dirBuf = new Uint8Array(0);
  #dirView = new DataView(this.#dirBuf.buffer);
  #dirHandles = new Map<number, Inode[]>();
  #listings = new Map<number, Inode[]>();
  #nextFh = 1;
  #stopping = false;
  #loop: Promise<void> | null = null;
  #log: (line: string) => void;
  #opts: FuseOptions;
  /** Requests served, by op name. */
  readonly ops: Record<string, number> = {};

  constructor(fs: Projection, overlay: Overlay | null, opts: FuseOptions) {
    this.fs = fs;
    this.overlay = overlay;
    this.mountpoint = opts.mountpoint;
    this.#opts = opts;
    this.#timeout = opts.timeout ?? (overlay ? 1 : 86400);
    this.#log = opts.log ?? ((l) => console.error(l));
    this.#lib = loadFuse();
  }

  /** Creates the session and mounts it; throws HdError when the kernel refuses. */
  mount(): void {
    const L = this.#lib.symbols;
    const ops = new Uint8Array(LAYOUT.opsSize);
    const opsView = new DataView(ops.buffer);
    for (const [name, fn] of Object.entries(this.#handlers())) {
      if ((name === "getxattr" || name === "listxattr") && !this.#opts.xattrs) continue;
      const def = CALLBACKS[name as keyof typeof CALLBACKS];
      // deno-lint-ignore no-explicit-any
      const cb = new Deno.UnsafeCallback(def, fn as any);
      this.#callbacks.push(cb);
      const off = LAYOUT.ops[name as keyof typeof LAYOUT.ops];
      opsView.setBigUint64(off, BigInt(Deno.UnsafePointer.value(cb.pointer)), true);
    }
    const allowOther = this.#opts.allowOther ?? Deno.uid() === 0;
    const o = [
      `fsname=${(this.#opts.fsname ?? "hd").replace(/[,\\]/g, "_")}`,
      "subtype=hd",
      "default_permissions",
      ...(allowOther ? ["allow_other"] : []),
      ...(this.overlay ? [] : ["ro"]),
    ].join(",");
    const argStrs = ["hd", "-o", o].map(cstr);
    const argv = new BigUint64Array(argStrs.length + 1);
    argStrs.forEach((s, i) => argv[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
    const args = new Uint8Array(LAYOUT.args.size);
    const av = new DataView(args.buffer);
    av.setInt32(LAYOUT.args.argc, argStrs.length, true);
    av.setBigUint64(
      LAYOUT.args.argv,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(argv))),
      true,
    );
    this.#keep.push(ops, argStrs, argv, args);
    const se = L.fuse_session_new(
      Deno.UnsafePointer.of(args),
      Deno.UnsafePointer.of(ops),
      BigInt(LAYOUT.opsSize),
      null,
    );
    if (se === null) {
      throw new HdError(
        "Cannot mount: fuse_session_new failed (see the lines above)",
        "check the mount options; run with --debug",
      );
    }
    if (L.fuse_session_mount(se, cstr(this.mountpoint)) !== 0) {
      L.fuse_session_destroy(se);
      throw new HdError(
        `Cannot mount on ${this.mountpoint}: the kernel refused (see the lines above)`,
        "check that the directory exists and that you may mount there (root, or fusermount3)",
      );
    }
    this.#se = se;
  }

  /** Serves requests until the filesystem is unmounted or {@link stop} is called. */
  serve(): Promise<void> {
    if (!this.#loop) this.#loop = this.#run();
    return this.#loop;
  }

  async #run(): Promise<void> {
    const L = this.#lib.symbols;
    const buf = new Uint8Array(LAYOUT.buf.size);
    const bufPtr = Deno.UnsafePointer.of(buf);
    this.#keep.push(buf);
    // Drain queued requests synchronously on this thread (the fd is made non-blocking) and, while
    // busy, wait for the next one with poll() on this thread too; only after a second idle does
    // the loop sleep in poll() on a worker thread. This saves two thread hops per request for
    // serial clients (find, stat loops, cat), which matters most on a loaded machine.
    const fd = L.fuse_session_fd(this.#se);
    let libc: Libc | null = null;
    try {
      libc = openLibc();
      const fl = libc.symbols.fcntl(fd, F_GETFL, 0);
      if (fl < 0 || libc.symbols.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) libc = null;
    } catch {
      libc = null;
    }
    const pfd = new Uint8Array(POLLFD_SIZE);
    const pv = new DataView(pfd.buffer);
    pv.setInt32(0, fd, true);
    pv.setInt16(4, POLLIN, true);
    let yieldAt = performance.now() + 20;
    let busyAt = performance.now();
    while (!this.#stopping) {
      let r: number;
      if (libc) {
        r = L.fuse_session_receive_buf_sync(this.#se, bufPtr);
        if (r === -EAGAIN) {
          const now = performance.now();
          if (now - busyAt < ACTIVE_MS) {
            // Recently busy: wait on this thread (no thread hop when the next request comes),
            // in short slices so signals and the control socket still get their turn.
            if (libc.symbols.poll_sync(pfd, 1n, POLL_SLICE_MS) === 0 || now > yieldAt) {
              await new Promise((res) => setTimeout(res, 0));
              yieldAt = performance.now() + 20;
            }
          } else {
            // Idle: sleep in poll() on a worker thread, leaving the event loop free.
            await libc.symbols.poll(pfd, 1n, -1);
            yieldAt = performance.now() + 20;
          }
          continue;
        }
        busyAt = performance.now();
      } else r = await L.fuse_session_receive_buf(this.#se, bufPtr);
      if (this.#stopping) break;
      if (r === -EINTR) continue;
      if (r <= 0) break;
      L.fuse_session_process_buf(this.#se, bufPtr);
      if (L.fuse_session_exited(this.#se)) break;
      // Under steady load, let signals and the control socket in now and then.
      if (libc && performance.now() > yieldAt) {
        await new Promise((res) => setTimeout(res, 0));
        yieldAt = performance.now() + 20;
      }
    }
    libc?.close();
  }

  /**
   * Stops serving and unmounts (lazily, so a reader whose cwd is inside cannot block it). Waits
   * at most `graceMs` for the receive loop to notice; the caller should then exit the process,
   * which closes the connection (busy clients then see ENOTCONN, not a hang).
   */
  async stop(graceMs = 1500): Promise<boolean> {
    if (this.#se === null) return true;
    const L = this.#lib.symbols;
    const first = !this.#stopping;
    this.#stopping = true;
    if (first) {
      L.fuse_session_exit(this.#se);
      L.fuse_session_unmount(this.#se);
    }
    if (!this.#loop) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      this.#loop.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), graceMs)),
    ]);
    clearTimeout(timer);
    return ended;
  }

  // ---- replies ----

  #fillStat(n: Inode): Uint8Array {
    const v = this.#statView;
    const S = LAYOUT.stat;
    this.#stat.fill(0);
    setU64(v, S.ino, n.ino);
    setU64(v, S.nlink, this.fs.nlink(n));
    v.setUint32(S.mode, n.mode, true);
    v.setUint32(S.uid, n.uid, true);
    v.setUint32(S.gid, n.gid, true);
    setU64(v, S.rdev, n.rdev);
    setU64(v, S.st_size, n.size);
    setU64(v, S.blksize, 4096);
    setU64(v, S.blocks, Math.ceil(n.size / 512));
    setU64(v, S.atim, n.mtime);
    setU64(v, S.mtim, n.mtime);
    setU64(v, S.ctim, n.mtime);
    return this.#stat;
  }

  /** struct fuse_entry_out (and its fuse_attr) at `p`, as libfuse's fill_entry writes it. */
  #encodeEntryOut(v: DataView, p: number, n: Inode): void {
    const t = this.#timeout;
    const sec = Math.floor(t);
    const nsec = Math.floor((t - sec) * 1e9);
    setU64(v, p, n.ino); // nodeid
    setU64(v, p + 8, 0); // generation
    setU64(v, p + 16, sec); // entry_valid
    setU64(v, p + 24, sec); // attr_valid
    v.setUint32(p + 32, nsec, true);
    v.setUint32(p + 36, nsec, true);
    const a = p + 40; // struct fuse_attr
    setU64(v, a, n.ino);
    setU64(v, a + 8, n.size);
    setU64(v, a + 16, Math.ceil(n.size / 512));
    setU64(v, a + 24, n.mtime); // atime
    setU64(v, a + 32, n.mtime);
    setU64(v, a + 40, n.mtime); // ctime
    v.setUint32(a + 48, 0, true);
    v.setUint32(a + 52, 0, true);
    v.setUint32(a + 56, 0, true);
    v.setUint32(a + 60, n.mode, true);
    v.setUint32(a + 64, this.fs.nlink(n), true);
    v.setUint32(a + 68, n.uid, true);
    v.setUint32(a + 72, n.gid, true);
    v.setUint32(a + 76, n.rdev, true);
    v.setUint32(a + 80, 4096, true); // blksize
    v.setUint32(a + 84, 0, true); // flags
  }

  #fillEntry(n: Inode | null, timeout = this.#timeout): Uint8Array {
    const v = this.#entryView;
    const E = LAYOUT.entry;
    if (n) {
      this.#fillStat(n);
      this.#entry.set(this.#stat, E.attr);
    } else this.#entry.fill(0, E.attr, E.attr + LAYOUT.stat.size);
    setU64(v, E.ino, n ? n.ino : 0);
    setU64(v, E.generation, 0);
    v.setFloat64(E.attr_timeout, timeout, true);
    v.setFloat64(E.entry_timeout, timeout, true);
    return this.#entry;
  }

  #fi(fi: Deno.PointerValue): DataView {
    return new DataView(Deno.UnsafePointerView.getArrayBuffer(fi!, LAYOUT.fileInfo.size));
  }

  #setFiBits(fi: Deno.PointerValue, bits: number[]): void {
    const v = this.#fi(fi);
    let w = v.getUint32(LAYOUT.fileInfo.bits, true);
    for (const b of bits) w |= 1 << b;
    v.setUint32(LAYOUT.fileInfo.bits, w, true);
  }

  #ctx(req: Deno.PointerValue): { uid: number; gid: number } {
    const p = this.#lib.symbols.fuse_req_ctx(req);
    if (!p) return { uid: 0, gid: 0 };
    const v = new Deno.UnsafePointerView(p);
    return { uid: v.getUint32(LAYOUT.ctx.uid), gid: v.getUint32(LAYOUT.ctx.gid) };
  }

  /** The entries readdir walks: the open handle's snapshot (rw), else the inode's listing. */
  #listing(ino: number, fi: Deno.PointerValue): Inode[] {
    const fh = fi ? Number(this.#fi(fi).getBigUint64(LAYOUT.fileInfo.fh, true)) : 0;
    const h = fh ? this.#dirHandles.get(fh) : undefined;
    if (h) return h;
    if (this.overlay) throw new FsError(Errno.EBADF);
    let l = this.#listings.get(ino);
    if (!l) {
      const d = this.fs.inode(ino);
      if ((d.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
      l = [d, d.parent, ...this.fs.children(d).values()];
      if (this.#listings.size > 4096) this.#listings.clear();
      this.#listings.set(ino, l);
    }
    return l;
  }

  #rw(): Overlay {
    if (!this.overlay) throw new FsError(Errno.EROFS);
    return this.overlay;
  }

  /** Wraps an op: counts it, and turns a thrown FsError (or any error) into fuse_reply_err. */
  #op<A extends unknown[]>(
    name: string,
    fn: (req: Deno.PointerValue, ...a: A) => void,
  ): (req: Deno.PointerValue, ...a: A) => void {
    const L = this.#lib.symbols;
    return (req, ...a) => {
      this.ops[name] = (this.ops[name] ?? 0) + 1;
      try {
        fn(req, ...a);
      } catch (e) {
        if (e instanceof FsError) L.fuse_reply_err(req, e.errno);
        else {
          this.#log(`hd mount: ${name} failed: ${(e as Error).stack ?? e}`);
          L.fuse_reply_err(req, Errno.EIO);
        }
      }
    };
  }

  #handlers(): Record<string, unknown> {
    const L = this.#lib.symbols;
    const fs = this.fs;
    const name = (p: Deno.PointerValue) => Deno.UnsafePointerView.getCString(p!);
    const replyEntry = (req: Deno.PointerValue, n: Inode) =>
      L.fuse_reply_entry(req, this.#fillEntry(n));
    type P = Deno.PointerValue;
    type N = number | bigint;

    // Readdir replies are encoded here in the kernel's wire format (struct fuse_dirent /
    // fuse_direntplus of fuse_kernel.h, what fuse_add_direntry[_plus] writes): one FFI call per
    // request instead of one per entry, and no per-entry allocations.
    const readdir = (plus: boolean) =>
      this.#op(plus ? "readdirplus" : "readdir", (req: P, ino: N, size: N, off: N, fi: P) => {
        const list = this.#listing(num(ino), fi);
        const cap = num(size);
        if (this.#dirBuf.length < cap) {
          this.#dirBuf = new Uint8Array(cap);
          this.#dirView = new DataView(this.#dirBuf.buffer);
        }
        const buf = this.#dirBuf;
        const v = this.#dirView;
        const head = plus ? DIRENTPLUS_NAME : DIRENT_NAME;
        let pos = 0;
        for (let i = num(off); i < list.length; i++) {
          const n = list[i];
          const nm = i === 0 ? "." : i === 1 ? ".." : n.name;
          if (plus && i > 1) fs.getattr(n.ino);
          const room = cap - pos - head;
          if (room <= 0) break;
          let len: number;
          if (nm.length * 3 <= room) len = enc.encodeInto(nm, buf.subarray(pos + head)).written;
          else {
            const b = enc.encode(nm);
            if (b.length > room) break;
            buf.set(b, pos + head);
            len = b.length;
          }
          const padded = (head + len + 7) & ~7;
          if (padded > cap - pos) break;
          buf.fill(0, pos + head + len, pos + padded);
          let d = pos;
          if (plus) {
            this.#encodeEntryOut(v, pos, n);
            d += ENTRY_OUT_SIZE;
          }
          setU64(v, d, n.ino);
          setU64(v, d + 8, i + 1);
          v.setUint32(d + 16, len, true);
          v.setUint32(d + 20, (n.mode & S_IFMT) >>> 12, true);
          pos += padded;
        }
        L.fuse_reply_buf(req, buf.subarray(0, pos), BigInt(pos));
      });

    return {
      lookup: this.#op("lookup", (req: P, parent: N, nameP: P) => {
        let n: Inode;
        try {
          n = fs.lookup(num(parent), name(nameP));
        } catch (e) {
          if (e instanceof FsError && e.errno === Errno.ENOENT && !this.overlay) {
            // Negative entry: the kernel remembers the miss (the tree cannot change).
            L.fuse_reply_entry(req, this.#fillEntry(null));
            return;
          }
          throw e;
        }
        replyEntry(req, n);
      }),
      forget: (req: P) => L.fuse_reply_none(req),
      forget_multi: (req: P) => L.fuse_reply_none(req),
      getattr: this.#op("getattr", (req: P, ino: N) => {
        L.fuse_reply_attr(req, this.#fillStat(fs.getattr(num(ino))), this.#timeout);
      }),
      setattr: this.#op("setattr", (req: P, ino: N, attr: P, toSet: number) => {
        const ov = this.#rw();
        const v = new Deno.UnsafePointerView(attr!);
        const S = LAYOUT.stat;
        const i = num(ino);
        if (toSet & FUSE_SET_ATTR.SIZE) ov.truncate(i, Number(v.getBigInt64(S.st_size)));
        const a: { mode?: number; uid?: number; gid?: number; mtime?: number } = {};
        if (toSet & FUSE_SET_ATTR.MODE) a.mode = v.getUint32(S.mode);
        if (toSet & FUSE_SET_ATTR.UID) a.uid = v.getUint32(S.uid);
        if (toSet & FUSE_SET_ATTR.GID) a.gid = v.getUint32(S.gid);
        if (toSet & FUSE_SET_ATTR.MTIME) a.mtime = Number(v.getBigInt64(S.mtim));
        if (toSet & FUSE_SET_ATTR.MTIME_NOW) a.mtime = Math.floor(Date.now() / 1000);
        if (Object.keys(a).length) ov.setattr(i, a);
        L.fuse_reply_attr(req, this.#fillStat(fs.getattr(i)), this.#timeout);
      }),
      readlink: this.#op("readlink", (req: P, ino: N) => {
        L.fuse_reply_readlink(req, cstr(fs.readlink(num(ino))));
      }),
      open: this.#op("open", (req: P, ino: N, fi: P) => {
        // Read-only: ENOSYS tells the kernel to stop sending OPEN and RELEASE for files; it then
        // keeps their page cache (FOPEN_KEEP_CACHE is its default without open).
        if (!this.overlay) throw new FsError(Errno.ENOSYS);
        const n = fs.inode(num(ino));
        if ((n.mode & S_IFMT) === S_IFDIR) throw new FsError(Errno.EISDIR);
        const flags = this.#fi(fi).getInt32(LAYOUT.fileInfo.flags, true);
        if ((flags & O_ACCMODE) !== 0 && !this.overlay) throw new FsError(Errno.EROFS);
        // libfuse asks for atomic O_TRUNC: the truncation of `> file` arrives here, not in setattr.
        if (flags & O_TRUNC && (flags & O_ACCMODE) !== 0) this.#rw().truncate(n.ino, 0);
        this.#setFiBits(fi, [LAYOUT.fileInfoBits.keep_cache]);
        L.fuse_reply_open(req, fi);
      }),
      read: this.#op("read", (req: P, ino: N, size: N, off: N) => {
        const bytes = fs.read(num(ino), num(off), num(size));
        L.fuse_reply_buf(req, bytes, BigInt(bytes.length));
      }),
      write: this.#op("write", (req: P, ino: N, buf: P, size: N, off: N) => {
        const ov = this.#rw();
        const n = num(size);
        const bytes = n
          ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf!, n))
          : new Uint8Array(0);
        L.fuse_reply_write(req, BigInt(ov.write(num(ino), num(off), bytes)));
      }),
      // Nothing to flush (reads come from the store, writes go to memory): ENOSYS makes the
      // kernel stop sending FLUSH on every close().
      flush: this.#op("flush", (req: P) => L.fuse_reply_err(req, Errno.ENOSYS)),
      release: this.#op("release", (req: P) => L.fuse_reply_err(req, 0)),
      fsync: this.#op("fsync", (req: P) => L.fuse_reply_err(req, 0)),
      opendir: this.#op("opendir", (req: P, ino: N, fi: P) => {
        // Read-only: likewise no OPENDIR/RELEASEDIR; readdir lists the inode (cached listing).
        if (!this.overlay) throw new FsError(Errno.ENOSYS);
        const d = fs.inode(num(ino));
        if ((d.mode & S_IFMT) !== S_IFDIR) throw new FsError(Errno.ENOTDIR);
        const list = [d, d.parent, ...fs.children(d).values()];
        const fh = this.#nextFh++;
        this.#dirHandles.set(fh, list);
        this.#fi(fi).setBigUint64(LAYOUT.fileInfo.fh, BigInt(fh), true);
        if (!this.overlay) {
          this.#setFiBits(fi, [LAYOUT.fileInfoBits.keep_cache, LAYOUT.fileInfoBits.cache_readdir]);
        }
        L.fuse_reply_open(req, fi);
      }),
      readdir: readdir(false),
      readdirplus: readdir(true),
      releasedir: this.#op("releasedir", (req: P, _ino: N, fi: P) => {
        this.#dirHandles.delete(Number(this.#fi(fi).getBigUint64(LAYOUT.fileInfo.fh, true)));
        L.fuse_reply_err(req, 0);
      }),
      getxattr: this.#op("getxattr", (req: P, ino: N, nameP: P, size: N) => {
        const want = name(nameP);
        const v = fs.xattrs(num(ino)).find(([k]) => k === want)?.[1];
        if (v === undefined) throw new FsError(Errno.ENODATA);
        const cap = num(size);
        if (cap === 0) L.fuse_reply_xattr(req, BigInt(v.length));
        else if (cap < v.length) throw new FsError(Errno.ERANGE);
        else L.fuse_reply_buf(req, new Uint8Array(v), BigInt(v.length));
      }),
      listxattr: this.#op("listxattr", (req: P, ino: N, size: N) => {
        const names = new TextEncoder().encode(
          fs.xattrs(num(ino)).map(([k]) => k + "\0").join(""),
        );
        const cap = num(size);
        if (cap === 0) L.fuse_reply_xattr(req, BigInt(names.length));
        else if (cap < names.length) throw new FsError(Errno.ERANGE);
        else L.fuse_reply_buf(req, names, BigInt(names.length));
      }),
      statfs: this.#op("statfs", (req: P) => {
        const S = LAYOUT.statvfs;
        const b = new Uint8Array(S.size);
        const v = new DataView(b.buffer);
        const free = this.overlay
          ? BigInt(Math.floor(Deno.systemMemoryInfo().available / 4096))
          : 0n;
        v.setBigUint64(S.bsize, 4096n, true);
        v.setBigUint64(S.frsize, 4096n, true);
        v.setBigUint64(S.blocks, free, true);
        v.setBigUint64(S.bfree, free, true);
        v.setBigUint64(S.bavail, free, true);
        v.setBigUint64(S.files, BigInt(fs.stats.inodes), true);
        v.setBigUint64(S.namemax, 255n, true);
        L.fuse_reply_statfs(req, b);
      }),
      create: this.#op("create", (req: P, parent: N, nameP: P, mode: number, fi: P) => {
        const c = this.#ctx(req);
        const n = this.#rw().create(num(parent), name(nameP), mode, c.uid, c.gid);
        L.fuse_reply_create(req, this.#fillEntry(n), fi);
      }),
      mkdir: this.#op("mkdir", (req: P, parent: N, nameP: P, mode: number) => {
        const c = this.#ctx(req);
        replyEntry(req, this.#rw().mkdir(num(parent), name(nameP), mode, c.uid, c.gid));
      }),
      symlink: this.#op("symlink", (req: P, link: P, parent: N, nameP: P) => {
        const c = this.#ctx(req);
        replyEntry(req, this.#rw().symlink(num(parent), name(nameP), name(link), c.uid, c.gid));
      }),
      unlink: this.#op("unlink", (req: P, parent: N, nameP: P) => {
        this.#rw().unlink(num(parent), name(nameP));
        L.fuse_reply_err(req, 0);
      }),
      rmdir: this.#op("rmdir", (req: P, parent: N, nameP: P) => {
        this.#rw().rmdir(num(parent), name(nameP));
        L.fuse_reply_err(req, 0);
      }),
      rename: this.#op(
        "rename",
        (req: P, parent: N, nameP: P, newParent: N, newName: P, flags: number) => {
          this.#rw().rename(num(parent), name(nameP), num(newParent), name(newName), flags);
          L.fuse_reply_err(req, 0);
        },
      ),
    };
  }
}
