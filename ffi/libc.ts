/**
 * The few libc calls the FUSE loop needs: `poll` (run on a worker thread, so waiting for the next
 * request does not block the event loop) and `fcntl` (to make the FUSE fd non-blocking, so queued
 * requests are drained on the JS thread without a thread hop each).
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
} as const;

/** The opened libc. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Opens glibc's libc.so.6. */
export function openLibc(): Libc {
  return Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
}
