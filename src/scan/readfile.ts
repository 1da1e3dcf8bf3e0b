/**
 * Whole-file reads for the ingest workers through libc (ffi/libc.ts): `open` + `posix_fadvise
 * (WILLNEED)` for the files a worker will read next (the kernel starts reading them from disk
 * without blocking: a cold cache keeps several reads in flight), then a sync `read` of each into
 * one reused buffer when its turn comes. Per small file this costs a few microseconds, where
 * Deno's async open and read ops cost tens (a thread-pool hop and a resource each).
 *
 * @example
 * ```ts
 * import { FileReader } from "./readfile.ts";
 * const r = FileReader.open();
 * if (r) {
 *   const fd = r.prefetch("/etc/hostname");
 *   const bytes = fd instanceof Error ? fd : r.read(fd, "/etc/hostname", 64);
 *   console.log(bytes instanceof Error ? bytes.message : bytes.length);
 * }
 * ```
 * @module
 */
import { type LibcRead, openLibcRead } from "../../ffi/libc.ts";
import { openRegular } from "../sys/nofollow.ts";

const AT_FDCWD = -100;
/** O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY */
const O_RDONLY_NOFOLLOW = 0o2000000 | 0o400000 | 0o4000 | 0o400;
/** How far past its lstat size a file is read before the read gives up. */
const GROWTH_MAX = 16 << 20;
const POSIX_FADV_WILLNEED = 3;

/** Reads whole files through libc; one per worker (its buffer is reused by each read). */
export class FileReader {
  readonly #lib: LibcRead;
  #buf = new Uint8Array(1 << 16);
  #path = new Uint8Array(4096);
  readonly #te = new TextEncoder();

  private constructor(lib: LibcRead) {
    this.#lib = lib;
  }

  /** A reader, or null when libc cannot be bound (the caller reads with Deno's API). */
  static open(): FileReader | null {
    try {
      return new FileReader(openLibcRead());
    } catch {
      return null;
    }
  }

  #errno(): { errno: number; text: string } {
    const p = this.#lib.symbols.__errno_location();
    const errno = p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
    const sp = this.#lib.symbols.strerror(errno);
    return { errno, text: sp === null ? "error" : new Deno.UnsafePointerView(sp).getCString() };
  }

  /**
   * Opens the regular file at `path` (a scan's path below its trusted `root`: no symlink is
   * followed there, src/sys/nofollow.ts) and asks the kernel to start reading it; returns the fd,
   * or an Error saying why it cannot be opened. Close it with {@link read} (or {@link close}).
   */
  prefetch(path: string, root?: string): number | Error {
    const fd = this.open(path, root);
    if (typeof fd === "number") {
      this.#lib.symbols.posix_fadvise(fd, 0n, 0n, POSIX_FADV_WILLNEED); // a hint: failure is fine
    }
    return fd;
  }

  /** {@link prefetch} without the read-ahead hint (a file read at once, or streamed). */
  open(path: string, root?: string): number | Error {
    const safe = openRegular(path, root);
    if (safe !== null) return safe;
    // no libc for nofollow.ts (it binds its own): the last component is still not followed
    if (this.#path.length < path.length * 3 + 1) this.#path = new Uint8Array(path.length * 3 + 1);
    const { written } = this.#te.encodeInto(path, this.#path);
    this.#path[written] = 0;
    if (path.indexOf("\0") >= 0) return new Error(`Cannot read ${path}: NUL in the path`);
    const fd = this.#lib.symbols.openat(AT_FDCWD, this.#path, O_RDONLY_NOFOLLOW);
    if (fd < 0) {
      const { errno, text } = this.#errno();
      return new Error(`Cannot read ${path}: ${text} (errno ${errno})`);
    }
    return fd;
  }

  /**
   * Reads all of `fd` (from {@link prefetch}) into the reused buffer and closes it. The result is
   * a view valid until the next read; an Error when the read fails.
   */
  read(fd: number, path: string, sizeHint: number): Uint8Array | Error {
    try {
      if (this.#buf.length < sizeHint + 1) {
        this.#buf = new Uint8Array(Math.max(sizeHint + 1, 2 * this.#buf.length));
      }
      let n = 0;
      while (true) {
        // The file may have grown since its lstat: keep a spare byte to notice, and grow, up to a
        // point (a file written without end while it is read is not read without end)
        if (n >= sizeHint + GROWTH_MAX) {
          return new Error(`Cannot read ${path}: it grew by more than 16 MiB while it was read`);
        }
        if (n === this.#buf.length) {
          const b = new Uint8Array(this.#buf.length * 2);
          b.set(this.#buf);
          this.#buf = b;
        }
        const got = Number(
          this.#lib.symbols.read(fd, this.#buf.subarray(n), BigInt(this.#buf.length - n)),
        );
        if (got < 0) {
          const { errno, text } = this.#errno();
          if (errno === 4) continue; // EINTR
          return new Error(`Cannot read ${path}: ${text} (errno ${errno})`);
        }
        if (got === 0) break;
        n += got;
      }
      return this.#buf.subarray(0, n);
    } finally {
      this.close(fd);
    }
  }

  /**
   * The bytes of `fd` (from {@link open}) in blocks of up to `blockSize`, each a view into one
   * buffer valid until the next; closes it at the end. Throws when a read fails.
   */
  *blocks(fd: number, path: string, blockSize = 4 << 20): Generator<Uint8Array> {
    try {
      const buf = new Uint8Array(blockSize);
      while (true) {
        const got = Number(this.#lib.symbols.read(fd, buf, BigInt(buf.length)));
        if (got < 0) {
          const { errno, text } = this.#errno();
          if (errno === 4) continue; // EINTR
          throw new Error(`Cannot read ${path}: ${text} (errno ${errno})`);
        }
        if (got === 0) return;
        yield buf.subarray(0, got);
      }
    } finally {
      this.close(fd);
    }
  }

  /** Closes an fd from {@link prefetch} that will not be read. */
  close(fd: number): void {
    this.#lib.symbols.close(fd);
  }
}
