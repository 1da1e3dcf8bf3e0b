/**
 * The few libc calls the sandbox needs that Deno has no API for (mknod, xattrs, lchown, mount,
 * chroot, waitpid), through Deno FFI. The library is opened on first use.
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * libc().mknodChar("/tmp/x", 0); // an overlay whiteout
 * ```
 * @module
 */
import { S_IFCHR } from "../sys/mode.ts";

const SYMBOLS = {
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  chroot: { parameters: ["buffer"], result: "i32" },
  chdir: { parameters: ["buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  sethostname: { parameters: ["buffer", "usize"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** Mount flags used here. */
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

/** MNT_DETACH for umount2. */
export const MNT_DETACH = 2;

const te = new TextEncoder();

function cstr(s: string): Uint8Array<ArrayBuffer> {
  return te.encode(s + "\0") as Uint8Array<ArrayBuffer>;
}

/** A failed libc call: the errno and its text. */
export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number, text: string) {
    super(`${call}: ${text} (errno ${errno})`);
  }
}

/** Typed wrappers over the libc symbols; each throws {@link LibcError} on failure. */
export class Libc {
  #lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  constructor() {
    this.#lib = Deno.dlopen("libc.so.6", SYMBOLS);
  }

  #errno(): number {
    const p = this.#lib.symbols.__errno_location();
    return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  }

  #check(call: string, r: number | bigint): void {
    if (Number(r) >= 0) return;
    const errno = this.#errno();
    const sp = this.#lib.symbols.strerror(errno);
    const text = sp === null ? "error" : new Deno.UnsafePointerView(sp).getCString();
    throw new LibcError(call, errno, text);
  }

  /** mknod(path, S_IFCHR|0000, rdev): a character device (rdev 0 = overlay whiteout). */
  mknodChar(path: string, rdev: number, mode = 0): void {
    this.#check("mknod", this.#lib.symbols.mknod(cstr(path), S_IFCHR | mode, BigInt(rdev)));
  }

  /** mknod with a full st_mode (devices, fifos). */
  mknod(path: string, mode: number, rdev: number): void {
    this.#check("mknod", this.#lib.symbols.mknod(cstr(path), mode, BigInt(rdev)));
  }

  /** lsetxattr(path, name, value): a string is written as UTF-8. */
  setxattr(path: string, name: string, value: string | Uint8Array): void {
    const v = (typeof value === "string" ? te.encode(value) : new Uint8Array(value)) as Uint8Array<
      ArrayBuffer
    >;
    this.#check(
      "setxattr",
      this.#lib.symbols.lsetxattr(cstr(path), cstr(name), v, BigInt(v.length), 0),
    );
  }

  /** lgetxattr(path, name) as a string, or null when the attribute is absent. */
  getxattr(path: string, name: string): string | null {
    const buf = new Uint8Array(256);
    const r = Number(this.#lib.symbols.lgetxattr(cstr(path), cstr(name), buf, BigInt(buf.length)));
    if (r < 0) return null;
    return new TextDecoder().decode(buf.subarray(0, r));
  }

  /** lchown(path, uid, gid): does not follow symlinks. */
  lchown(path: string, uid: number, gid: number): void {
    this.#check("lchown", this.#lib.symbols.lchown(cstr(path), uid, gid));
  }

  /** mount(source, target, fstype, flags, data). */
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

  /** umount2(target, flags). */
  umount(target: string, flags = 0): void {
    this.#check(`umount ${target}`, this.#lib.symbols.umount2(cstr(target), flags));
  }

  /** chroot(path). */
  chroot(path: string): void {
    this.#check("chroot", this.#lib.symbols.chroot(cstr(path)));
  }

  /** chdir(path). */
  chdir(path: string): void {
    this.#check("chdir", this.#lib.symbols.chdir(cstr(path)));
  }

  /** waitpid(pid, WNOHANG): the reaped pid, or 0 when it has not exited. */
  reap(pid: number): number {
    const st = new Uint8Array(4);
    const r = this.#lib.symbols.waitpid(pid, st, 1);
    return r < 0 ? 0 : r;
  }

  /** sethostname(name). */
  sethostname(name: string): void {
    const b = te.encode(name) as Uint8Array<ArrayBuffer>;
    this.#check("sethostname", this.#lib.symbols.sethostname(b, BigInt(b.length)));
  }
}

let cached: Libc | null = null;

/** The process-wide {@link Libc} (opened on first call). */
export function libc(): Libc {
  return cached ??= new Libc();
}
