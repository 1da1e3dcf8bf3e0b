/**
 * hd's binding of libc (the only `Deno.dlopen("libc.so.6")`, whole or, for the scan's lstat,
 * three symbols of it), for the calls Deno has no API
 * for: `poll` (run on a worker thread, so the FUSE loop's wait for the next request does not block
 * the event loop) and `fcntl` (to make the FUSE fd non-blocking, so queued requests are drained on
 * the JS thread without a thread hop each); the xattr calls (`lsetxattr`, `lgetxattr`,
 * `llistxattr`, with errno) of checkout and layers; and `mknod`, `lchown`, `mount`, `umount2` for
 * root filesystems; `fstatat` for the scan's lstat of every file, and `openat`/`close` for the directory those
 * are looked up below (src/sys/lstat.ts); `openat2`, `fstat`, `readlinkat` for the scan's opens that
 * follow no symlink (src/sys/nofollow.ts). The typed
 * wrappers that throw are src/sys/libc.ts.
 *
 * @example
 * ```ts
 * import { openLibc, O_NONBLOCK } from "./libc.ts";
 * const libc = openLibc();
 * ```
 * @module
 */

/** fcntl commands and flags (x86_64 Linux). */
export const F_GETFL = 3;
/** fcntl F_SETFL. */
export const F_SETFL = 4;
/** open flag O_NONBLOCK. */
export const O_NONBLOCK = 0o4000;
/** poll event bits. */
export const POLLIN = 1;
/** errno EAGAIN. */
export const EAGAIN = 11;
/** sizeof(struct pollfd): int fd, short events, short revents. */
export const POLLFD_SIZE = 8;

/** The symbols bound. */
export const LIBC_SYMBOLS = {
  /** fstatat(dirfd, path, struct stat *, flags): lstat without Deno's FileInfo and its Dates. */
  fstatat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  /** openat(dirfd, path, flags): a directory fd (O_PATH) that fstatat can look up names below. */
  openat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /**
   * fstatat with its path and buffer as addresses (bigints): the status proof's check passes the
   * address of each name in place, without a typed array per name (src/sys/lstat.ts).
   */
  fstatat_addr: { name: "fstatat", parameters: ["i32", "usize", "usize", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  /** poll on the calling thread (for short waits without a thread hop). */
  poll_sync: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** lsetxattr(path, name, value, size, flags): does not follow symlinks. */
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  /** lgetxattr(path, name, buf, size): the value's length, or -1. */
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  /** llistxattr(path, buf, size): NUL-separated names, or -1. */
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  /** mknod(path, mode, dev): devices, fifos, overlay whiteouts. */
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  /** lchown(path, uid, gid): does not follow symlinks. */
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  /** mount(source, target, fstype, flags, data). */
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  /** umount2(target, flags). */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** mount(2) flags. */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
} as const;

/** MNT_DETACH for umount2: a lazy unmount. */
export const MNT_DETACH = 2;

/** The opened libc. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Opens glibc's libc.so.6. */
export function openLibc(): Libc {
  return Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
}

/** The symbols of the scan's lstat and the status proof's check (src/sys/lstat.ts). */
export const LIBC_STAT_SYMBOLS = {
  fstatat: LIBC_SYMBOLS.fstatat,
  fstatat_addr: LIBC_SYMBOLS.fstatat_addr,
  openat: LIBC_SYMBOLS.openat,
  close: LIBC_SYMBOLS.close,
} as const;

/**
 * The symbols of the ingest workers' file reads (src/scan/readfile.ts): a sync `read` costs a
 * fraction of Deno's async open/read ops per small file, and `posix_fadvise(WILLNEED)` on the
 * files read next keeps the disk busy (the kernel starts their reads without blocking).
 */
export const LIBC_READ_SYMBOLS = {
  openat: LIBC_SYMBOLS.openat,
  close: LIBC_SYMBOLS.close,
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  __errno_location: LIBC_SYMBOLS.__errno_location,
  strerror: LIBC_SYMBOLS.strerror,
} as const;

/**
 * The symbols of the scan's opens that follow no symlink (src/sys/nofollow.ts): `openat2` (by
 * `syscall`: glibc has no wrapper) with RESOLVE_NO_SYMLINKS, `openat` where the kernel has none,
 * `fstat` to check what opened, `readlinkat` on an `O_PATH` fd of a link.
 */
export const LIBC_NOFOLLOW_SYMBOLS = {
  /** syscall(SYS_openat2, dirfd, path, struct open_how *, size) */
  openat2: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
  },
  openat: LIBC_SYMBOLS.openat,
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: LIBC_SYMBOLS.close,
  __errno_location: LIBC_SYMBOLS.__errno_location,
  strerror: LIBC_SYMBOLS.strerror,
} as const;

/** libc bound with {@link LIBC_NOFOLLOW_SYMBOLS} only. */
export type LibcNofollow = Deno.DynamicLibrary<typeof LIBC_NOFOLLOW_SYMBOLS>;

/** libc with only the no-follow opens' symbols. */
export function openLibcNofollow(): LibcNofollow {
  return Deno.dlopen("libc.so.6", LIBC_NOFOLLOW_SYMBOLS);
}

/** libc bound with {@link LIBC_READ_SYMBOLS} only. */
export type LibcRead = Deno.DynamicLibrary<typeof LIBC_READ_SYMBOLS>;

/** libc with only the file-read symbols. */
export function openLibcRead(): LibcRead {
  return Deno.dlopen("libc.so.6", LIBC_READ_SYMBOLS);
}

/** libc bound with {@link LIBC_STAT_SYMBOLS} only. */
export type LibcStat = Deno.DynamicLibrary<typeof LIBC_STAT_SYMBOLS>;

/**
 * libc with only the lstat symbols: binding each symbol costs start-up time (all of
 * {@link LIBC_SYMBOLS}: ~3 ms; these three: ~1 ms), and `hd status` needs only these.
 */
export function openLibcStat(): LibcStat {
  return Deno.dlopen("libc.so.6", LIBC_STAT_SYMBOLS);
}

/**
 * The symbol that gives the heap's free pages back to the system (glibc's `malloc_trim`): a
 * long-lived server calls it once a mount it served has ended (src/sys/memory.ts).
 */
export const LIBC_TRIM_SYMBOLS = {
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

/** libc bound with {@link LIBC_TRIM_SYMBOLS} only; throws where libc has no `malloc_trim` (musl). */
export function openLibcTrim(): Deno.DynamicLibrary<typeof LIBC_TRIM_SYMBOLS> {
  return Deno.dlopen("libc.so.6", LIBC_TRIM_SYMBOLS);
}

/** The symbols of the FUSE server's receive loop (src/mount/fuse.ts): a non-blocking fd, polled. */
export const LIBC_POLL_SYMBOLS = {
  poll: LIBC_SYMBOLS.poll,
  poll_sync: LIBC_SYMBOLS.poll_sync,
  fcntl: LIBC_SYMBOLS.fcntl,
} as const;

/** libc bound with {@link LIBC_POLL_SYMBOLS} only. */
export type LibcPoll = Deno.DynamicLibrary<typeof LIBC_POLL_SYMBOLS>;

/** libc with only the poll loop's symbols (a mount server binds these before its first request). */
export function openLibcPoll(): LibcPoll {
  return Deno.dlopen("libc.so.6", LIBC_POLL_SYMBOLS);
}

const te = new TextEncoder();
const cstr = (s: string) => te.encode(s + "\0") as Uint8Array<ArrayBuffer>;

/** errno of the last failed call on this thread, with its text. */
export function lastError(libc: Libc): { errno: number; text: string } {
  const p = libc.symbols.__errno_location();
  const errno = p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  const sp = libc.symbols.strerror(errno);
  return { errno, text: sp === null ? "error" : new Deno.UnsafePointerView(sp).getCString() };
}

/** lsetxattr: null on success, else the error's text (`Operation not supported (errno 95)`). */
export function lsetxattr(
  libc: Libc,
  path: string,
  name: string,
  value: Uint8Array,
): string | null {
  const v = new Uint8Array(value) as Uint8Array<ArrayBuffer>;
  const r = libc.symbols.lsetxattr(cstr(path), cstr(name), v, BigInt(v.length), 0);
  if (r >= 0) return null;
  const e = lastError(libc);
  return `${e.text} (errno ${e.errno})`;
}

/** lgetxattr: the value, or null when absent or unreadable. */
export function lgetxattr(libc: Libc, path: string, name: string): Uint8Array | null {
  const buf = new Uint8Array(64 * 1024);
  const r = Number(libc.symbols.lgetxattr(cstr(path), cstr(name), buf, BigInt(buf.length)));
  return r < 0 ? null : buf.slice(0, r);
}

/** llistxattr: the names set on `path` (empty when none or unreadable). */
export function llistxattr(libc: Libc, path: string): string[] {
  const buf = new Uint8Array(64 * 1024);
  const r = Number(libc.symbols.llistxattr(cstr(path), buf, BigInt(buf.length)));
  if (r <= 0) return [];
  return new TextDecoder().decode(buf.subarray(0, r)).split("\0").filter((s) => s !== "");
}
