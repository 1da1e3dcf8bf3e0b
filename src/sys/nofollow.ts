/**
 * Opening what a scan found without following a symlink anywhere on the way. A scan lstats a
 * path, then reads it: between the two, whatever else writes to the tree (a service, a build
 * step, a container sharing the project) can put a symlink in its place, or in place of any
 * directory above it, and a plain `open` would then read the file the link names — a host file
 * (`/root/.ssh/id_rsa`) that would land in the store as the project's content, be served to the
 * environment, pushed to a shared cache. The functions here hand the kernel the whole path with
 * `openat2(RESOLVE_NO_SYMLINKS)`: any symlink in it (the last component too) fails the open
 * (`ELOOP`), and what opens must still be what the scan expects (a regular file, a directory).
 *
 * The caller names the root it trusts (the project, a step's output directory made by hd): the
 * path must lie below it, and symlinks are refused only below its real path (a project under a
 * symlinked home still opens). Without a root, only the last component is not followed.
 *
 * Where `openat2` is missing (Linux before 5.6: ENOSYS), the last component is still not followed
 * (`O_NOFOLLOW`) but a directory above it could be swapped: the weaker guarantee is said once on
 * stderr. Where libc cannot be bound (no FFI, not x86_64 Linux) the callers read with Deno's API.
 *
 * @example
 * ```ts
 * import { closeFd, openRegular } from "./nofollow.ts";
 * const fd = openRegular("/etc/hostname", "/etc");
 * if (typeof fd === "number") closeFd(fd);
 * ```
 * @module
 */
import { type LibcNofollow, openLibcNofollow } from "../../ffi/libc.ts";

/** SYS_openat2 on x86_64 and in the generic table (aarch64, riscv64 …). */
const SYS_OPENAT2 = 437n;
const AT_FDCWD = -100;
const O_RDONLY = 0;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_BENEATH = 0x08;
const RESOLVE_NO_SYMLINKS = 0x04;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const ENOSYS = 38;
const ENOENT = 2;
const EXDEV = 18;
const ELOOP = 40;
const EINTR = 4;

type Lib = LibcNofollow;
let lib: Lib | null | undefined;
/** openat2 answered ENOSYS once: the kernel has none. */
let noOpenat2 = false;
let warned = false;
const how = new Uint8Array(24); // struct open_how { u64 flags; u64 mode; u64 resolve; }
const howView = new DataView(how.buffer);
const statBuf = new Uint8Array(144); // struct stat of x86_64: st_mode at 24
const statView = new DataView(statBuf.buffer);
let pathBuf = new Uint8Array(4096);
const te = new TextEncoder();

function bind(): Lib | null {
  if (lib !== undefined) return lib;
  try {
    // (struct stat's layout below is x86_64's; elsewhere Deno's API, see the module doc)
    lib = Deno.build.os === "linux" && Deno.build.arch === "x86_64" ? openLibcNofollow() : null;
  } catch {
    lib = null;
  }
  return lib;
}

function weaker(why: string): void {
  if (warned) return;
  warned = true;
  console.error(
    `hd: warning: ${why}: a scan does not follow the last symlink of a path, but a directory ` +
      `swapped for a symlink while it scans could still be followed`,
  );
}

function cPath(path: string): Uint8Array {
  if (pathBuf.length < path.length * 3 + 1) pathBuf = new Uint8Array(path.length * 3 + 1);
  const { written } = te.encodeInto(path, pathBuf);
  pathBuf[written] = 0;
  return pathBuf;
}

function errnoOf(l: Lib): { errno: number; text: string } {
  const p = l.symbols.__errno_location();
  const errno = p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  const sp = l.symbols.strerror(errno);
  return { errno, text: sp === null ? "error" : new Deno.UnsafePointerView(sp).getCString() };
}

/** Why a path could not be opened, as one line. */
function failure(path: string, e: { errno: number; text: string }, what: string): Error {
  if (e.errno === ELOOP) {
    return new Error(
      `Cannot read ${path}: a symlink is in its way (it changed while it was read; hd does not ` +
        `follow symlinks inside a tree)`,
    );
  }
  return new Error(`Cannot ${what} ${path}: ${e.text} (errno ${e.errno})`);
}

/** Real paths of the roots named, by the name given (a scan names the same root many times). */
const reals = new Map<string, string>();

/**
 * The path to open for `path` below the trusted `root` (or the root itself, which may be a
 * symlink): `root`'s real path with the rest of `path` after it; null when there is no root,
 * `path` is not below it, or the root is gone.
 */
function below(path: string, root: string | undefined, fresh = false): string | null {
  if (root === undefined || root === "") return null;
  const r = root.endsWith("/") ? root.slice(0, -1) : root;
  if (path !== r && !path.startsWith(r + "/")) return null;
  let real = fresh ? undefined : reals.get(r);
  if (real === undefined) {
    try {
      real = Deno.realPathSync(r);
    } catch {
      return null;
    }
    if (reals.size >= 256) reals.clear();
    reals.set(r, real);
  }
  return (real === "/" ? "" : real) + path.slice(r.length);
}

/**
 * `open` of `path` with `flags` following no symlink: below `root` none at all (openat2 with
 * RESOLVE_NO_SYMLINKS from the root's real path; without openat2, openat with O_NOFOLLOW), and
 * without a root not the last component (O_NOFOLLOW). An fd, or the errno.
 */
function openNoSymlinks(
  l: Lib,
  path: string,
  flags: number,
  root?: string,
): number | { errno: number; text: string } {
  if (path.indexOf("\0") >= 0) return { errno: 22, text: "NUL in the path" };
  for (let fresh = false;; fresh = true) {
    const full = below(path, root, fresh);
    const fd = openOnce(l, full ?? path, flags, full !== null);
    // the root's real path may have moved since it was looked up (a symlink above it changed)
    if (
      typeof fd !== "number" && full !== null && !fresh && (fd.errno === 2 || fd.errno === ELOOP)
    ) {
      continue;
    }
    return fd;
  }
}

function openOnce(
  l: Lib,
  path: string,
  flags: number,
  resolveBelow: boolean,
): number | { errno: number; text: string } {
  const p = cPath(path);
  for (;;) {
    if (resolveBelow && !noOpenat2) {
      howView.setBigUint64(0, BigInt(flags | O_NOFOLLOW | O_CLOEXEC), true);
      howView.setBigUint64(8, 0n, true);
      howView.setBigUint64(16, BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), true);
      const fd = Number(l.symbols.openat2(SYS_OPENAT2, AT_FDCWD, p, how, 24n));
      if (fd >= 0) return fd;
      const e = errnoOf(l);
      if (e.errno === EINTR) continue;
      if (e.errno !== ENOSYS) return e;
      noOpenat2 = true;
      weaker("this kernel has no openat2 (Linux 5.6 or later has)");
    }
    const fd = l.symbols.openat(AT_FDCWD, p, flags | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) return fd;
    const e = errnoOf(l);
    if (e.errno !== EINTR) return e;
  }
}

/** The file type bits of what `fd` is open on, or -1. */
function typeOf(l: Lib, fd: number): number {
  return l.symbols.fstat(fd, statBuf) === 0 ? statView.getUint32(24, true) & S_IFMT : -1;
}

/**
 * Opens the regular file at `path` (below the trusted `root`, if given) for reading, following no
 * symlink (see the module doc), without blocking (a FIFO put in its place is refused, not waited
 * on), and returns its fd; an Error (one line) when it cannot be opened or is no longer a regular
 * file. Close it with {@link closeFd}. Without libc, null: read it with Deno's API.
 */
export function openRegular(path: string, root?: string): number | Error | null {
  const l = bind();
  if (l === null) return null;
  const fd = openNoSymlinks(l, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, root);
  if (typeof fd !== "number") return failure(path, fd, "read");
  if (typeOf(l, fd) !== S_IFREG) {
    l.symbols.close(fd);
    return new Error(`Cannot read ${path}: it is no longer a regular file (changed while read)`);
  }
  return fd;
}

/** Closes an fd of {@link openRegular}. */
export function closeFd(fd: number): void {
  bind()?.symbols.close(fd);
}

let hasProcFds: boolean | undefined;
/** Whether /proc/self/fd is there to list a directory through its fd. */
function procFds(): boolean {
  if (hasProcFds === undefined) {
    try {
      hasProcFds = Deno.statSync("/proc/self/fd").isDirectory;
    } catch {
      hasProcFds = false;
    }
  }
  return hasProcFds;
}

/**
 * The entries of the directory at `path` (below the trusted `root`, if given), listed through an
 * fd opened following no symlink (a directory swapped for a symlink is refused, not listed).
 * Throws an Error naming the path.
 */
export function listDir(path: string, root?: string): Deno.DirEntry[] {
  const l = bind();
  if (l === null) return [...Deno.readDirSync(path)];
  const fd = openNoSymlinks(l, path, O_RDONLY | O_DIRECTORY | O_NONBLOCK, root);
  if (typeof fd !== "number") throw failure(path, fd, "list");
  try {
    // the fd's magic link names the directory it is open on, not the path again
    return [...Deno.readDirSync(`/proc/self/fd/${fd}`)];
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || procFds()) throw e;
    weaker("/proc is not mounted");
    return [...Deno.readDirSync(path)];
  } finally {
    l.symbols.close(fd);
  }
}

const linkBuf = new Uint8Array(4096);
const empty = new Uint8Array(1);
const td = new TextDecoder();

/**
 * The target of the symlink at `path` (below the trusted `root`, if given), read following no
 * symlink on the way to it (a directory above it swapped for one fails, instead of reading a link
 * elsewhere). Throws.
 */
export function readLink(path: string, root?: string): string {
  const l = bind();
  if (l === null) return Deno.readLinkSync(path);
  // O_PATH | O_NOFOLLOW opens the link itself; RESOLVE_NO_SYMLINKS still refuses any above it
  const fd = openNoSymlinks(l, path, O_PATH, root);
  if (typeof fd !== "number") throw failure(path, fd, "read the link");
  try {
    const n = Number(l.symbols.readlinkat(fd, empty, linkBuf, BigInt(linkBuf.length)));
    if (n < 0) throw failure(path, errnoOf(l), "read the link");
    if (n === linkBuf.length) {
      throw new Error(`Cannot read the link ${path}: its target is too long`);
    }
    return td.decode(linkBuf.subarray(0, n));
  } finally {
    l.symbols.close(fd);
  }
}

/**
 * The bytes of the project file `rel` below `root` (hd.toml's `.env`, an `env_file`): a symlink
 * may lead to another file below `root`, never out of it (openat2's RESOLVE_BENEATH: an absolute
 * target or a `..` past `root` is refused, so a cloned project cannot have hd read
 * `/root/.aws/credentials` into a service's environment); only a regular file, at most `max`
 * bytes. Null when it does not exist; throws an Error saying why otherwise. Without openat2 a
 * symlink at `rel` is refused; without libc, Deno's API (no check).
 */
export function readBeneath(root: string, rel: string, max: number): Uint8Array | null {
  const l = bind();
  if (l === null) return absentAsNull(() => Deno.readFileSync(`${root}/${rel}`));
  const fd = openBeneath(l, root, rel);
  if (fd === null) return null;
  try {
    const size = Number(statView.getBigInt64(48, true));
    if (size > max) throw new Error(`${rel} is ${size} bytes (at most ${max})`);
    let buf = new Uint8Array(size + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (buf.length > max) break; // grew past `max` while read
        const b = new Uint8Array(Math.min(max + 1, buf.length * 2));
        b.set(buf);
        buf = b;
      }
      const got = Number(l.symbols.read(fd, buf.subarray(n), BigInt(buf.length - n)));
      if (got < 0) {
        const e = errnoOf(l);
        if (e.errno === EINTR) continue;
        throw new Error(`${rel}: ${e.text} (errno ${e.errno})`);
      }
      if (got === 0) break;
      n += got;
    }
    if (n > max) throw new Error(`${rel} is more than ${max} bytes`);
    return buf.slice(0, n);
  } finally {
    l.symbols.close(fd);
  }
}

/**
 * The regular file `rel` below `root` opened as {@link readBeneath} opens it (a symlink may lead
 * elsewhere below `root`, never out; a FIFO or device is refused without waiting), as a Deno file
 * to stream from: a blob of an OCI layout, whose bytes are checked against their digest only
 * once read to the end. Null when it does not exist; throws an Error saying why otherwise.
 */
export function openFileBeneath(root: string, rel: string): Deno.FsFile | null {
  const l = bind();
  if (l === null || !procFds()) {
    if (l !== null) weaker("/proc is not mounted");
    return absentAsNull(() => Deno.openSync(`${root}/${rel}`, { read: true }));
  }
  const fd = openBeneath(l, root, rel);
  if (fd === null) return null;
  try {
    // the fd's magic link reopens the very file checked, not the path again
    return Deno.openSync(`/proc/self/fd/${fd}`, { read: true });
  } finally {
    l.symbols.close(fd);
  }
}

/** What `f` gives, or null when it throws NotFound (the path is not there). */
function absentAsNull<T>(f: () => T): T | null {
  try {
    return f();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** openat2(RESOLVE_BENEATH) of `rel` below `root`: a regular file's fd (statBuf holds its stat). */
function openBeneath(l: Lib, root: string, rel: string): number | null {
  if (rel.indexOf("\0") >= 0 || root.indexOf("\0") >= 0) throw new Error(`${rel}: NUL in the path`);
  const dirFd = l.symbols.openat(AT_FDCWD, cPath(root), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) {
    const e = errnoOf(l);
    if (e.errno === ENOENT) return null;
    throw new Error(`${root}: ${e.text} (errno ${e.errno})`);
  }
  let fd = -1;
  try {
    const p = cPath(rel);
    const flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    for (;;) {
      if (!noOpenat2) {
        howView.setBigUint64(0, BigInt(flags), true);
        howView.setBigUint64(8, 0n, true);
        howView.setBigUint64(16, BigInt(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), true);
        fd = Number(l.symbols.openat2(SYS_OPENAT2, dirFd, p, how, 24n));
      } else fd = l.symbols.openat(dirFd, p, flags | O_NOFOLLOW);
      if (fd >= 0) break;
      const e = errnoOf(l);
      if (e.errno === EINTR) continue;
      if (e.errno === ENOSYS && !noOpenat2) {
        noOpenat2 = true;
        continue;
      }
      if (e.errno === ENOENT) return null;
      if (e.errno === EXDEV) throw new Error(`${rel} leads outside ${root} (a symlink)`);
      if (e.errno === ELOOP) throw new Error(`${rel} is a symlink`);
      throw new Error(`${rel}: ${e.text} (errno ${e.errno})`);
    }
    if (typeOf(l, fd) !== S_IFREG) throw new Error(`${rel} is not a regular file`);
    const ok = fd;
    fd = -1;
    return ok;
  } finally {
    if (fd >= 0) l.symbols.close(fd);
    l.symbols.close(dirFd);
  }
}

/**
 * {@link readBeneath} of the file at `path` inside its own directory (a state file, hd.lock): a
 * symlink may lead elsewhere in that directory, never out of it.
 */
export function readInDir(path: string, max: number): Uint8Array | null {
  const k = path.lastIndexOf("/");
  return k < 0
    ? readBeneath(".", path, max)
    : readBeneath(path.slice(0, k) || "/", path.slice(k + 1), max);
}
