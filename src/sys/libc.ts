/**
 * Typed wrappers over the libc calls of ffi/libc.ts that Deno has no API for — mknod, xattrs,
 * lchown, mount — each throwing a {@link LibcError} with the errno and its text. Checkout (dag)
 * and root filesystems and layers (sandbox) both set and read xattrs, so the wrappers sit below
 * both; the library is opened once, on first use. (The sandbox once opened its own copy of libc.)
 *
 * @example
 * ```ts
 * import { libc, LibcError } from "./libc.ts";
 * try {
 *   libc().setxattr("/nonexistent", "user.x", "y");
 * } catch (e) {
 *   if (e instanceof LibcError) console.log(e.errno, e.text); // 2 "No such file or directory"
 * }
 * ```
 * @module
 */
import { lastError, lgetxattr, type Libc, llistxattr, openLibc } from "../../ffi/libc.ts";
import { S_IFCHR } from "./mode.ts";

const te = new TextEncoder();

function cstr(s: string): Uint8Array<ArrayBuffer> {
  return te.encode(s + "\0") as Uint8Array<ArrayBuffer>;
}

/**
 * A failed libc call: the call, the errno and its text (`message` is `<call>: <text> (errno N)`).
 *
 * @example
 * ```ts
 * import { LibcError } from "./libc.ts";
 * const e = new LibcError("mount", 1, "Operation not permitted");
 * console.log(e.message); // "mount: Operation not permitted (errno 1)"
 * ```
 */
export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number, readonly text: string) {
    super(`${call}: ${text} (errno ${errno})`);
    this.name = "LibcError";
  }
}

/**
 * The wrappers; get the process-wide instance with {@link libc}.
 *
 * @example
 * ```ts
 * import { libc, type LibcCalls } from "./libc.ts";
 * const c: LibcCalls = libc();
 * console.log(c.getxattr("/", "user.none")); // null
 * ```
 */
export class LibcCalls {
  #lib: Libc;
  constructor(lib: Libc = openLibc()) {
    this.#lib = lib;
  }

  #check(call: string, r: number | bigint): void {
    if (Number(r) >= 0) return;
    const e = lastError(this.#lib);
    throw new LibcError(call, e.errno, e.text);
  }

  /** mknod(path, S_IFCHR|mode, rdev): a character device (rdev 0 = overlay whiteout). */
  mknodChar(path: string, rdev: number, mode = 0): void {
    this.#check("mknod", this.#lib.symbols.mknod(cstr(path), S_IFCHR | mode, BigInt(rdev)));
  }

  /** mknod with a full st_mode (devices, fifos). */
  mknod(path: string, mode: number, rdev: number): void {
    this.#check("mknod", this.#lib.symbols.mknod(cstr(path), mode, BigInt(rdev)));
  }

  /** lsetxattr(path, name, value), not following a symlink: a string is written as UTF-8. */
  setxattr(path: string, name: string, value: string | Uint8Array): void {
    const v = (typeof value === "string" ? te.encode(value) : new Uint8Array(value)) as Uint8Array<
      ArrayBuffer
    >;
    this.#check(
      "setxattr",
      this.#lib.symbols.lsetxattr(cstr(path), cstr(name), v, BigInt(v.length), 0),
    );
  }

  /** lgetxattr(path, name) as a string, or null when the attribute is absent or unreadable. */
  getxattr(path: string, name: string): string | null {
    const v = lgetxattr(this.#lib, path, name);
    return v === null ? null : new TextDecoder().decode(v);
  }

  /**
   * Every extended attribute of `path` (not following a symlink) as [name, value], sorted by the
   * UTF-8 bytes of the name (the order of a node's `xattrs`); names for which `keep` is false are
   * left out. Empty when there are none or the filesystem has none.
   */
  xattrs(path: string, keep: (name: string) => boolean = () => true): [string, Uint8Array][] {
    const out: [string, Uint8Array][] = [];
    for (const name of llistxattr(this.#lib, path)) {
      if (!keep(name)) continue;
      const v = lgetxattr(this.#lib, path, name);
      if (v !== null) out.push([name, v]);
    }
    const key = (n: string) => Array.from(te.encode(n), (b) => String.fromCharCode(b)).join("");
    return out.sort((a, b) => (key(a[0]) < key(b[0]) ? -1 : key(a[0]) > key(b[0]) ? 1 : 0));
  }

  /** lchown(path, uid, gid): does not follow symlinks. */
  lchown(path: string, uid: number, gid: number): void {
    this.#check("lchown", this.#lib.symbols.lchown(cstr(path), uid, gid));
  }

  /** mount(source, target, fstype, flags, data); fstype null for a bind mount. */
  mount(source: string, target: string, fstype: string | null, flags: number, data = ""): void {
    this.#check(
      `mount ${fstype ?? "bind"} on ${target}`,
      this.#lib.symbols.mount(
        cstr(source),
        cstr(target),
        fstype === null ? null : cstr(fstype),
        BigInt(flags),
        data === "" ? null : cstr(data),
      ),
    );
  }

  /** umount2(target, flags) (MNT_DETACH from ffi/libc.ts for a lazy unmount). */
  umount(target: string, flags = 0): void {
    this.#check(`umount ${target}`, this.#lib.symbols.umount2(cstr(target), flags));
  }
}

let cached: LibcCalls | null = null;

/**
 * The process-wide {@link LibcCalls} (libc is opened on the first call).
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * const dir = Deno.makeTempDirSync();
 * libc().mknod(`${dir}/fifo`, 0o010644, 0); // a named pipe
 * ```
 */
export function libc(): LibcCalls {
  return cached ??= new LibcCalls();
}
