/**
 * The few libc calls the FUSE loop needs: `poll` (run on a worker thread, so waiting for the next
 * request does not block the event loop) and `fcntl` (to make the FUSE fd non-blocking, so queued
 * requests are drained on the JS thread without a thread hop each); and the xattr calls checkout
 * needs (`lsetxattr`, `lgetxattr`, `llistxattr`, with errno), which Deno has no API for.
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
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The opened libc. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Opens glibc's libc.so.6. */
export function openLibc(): Libc {
  return Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
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
