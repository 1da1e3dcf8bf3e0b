/**
 * Small filesystem helpers shared by every module (the store is the lowest module, so they live
 * beside it).
 *
 * @example
 * ```ts
 * import { exists } from "./fs.ts";
 * if (!exists("/dev/fuse")) console.log("no FUSE here");
 * ```
 * @module
 */
import { HdError } from "./errors.ts";

/** True when `path` exists (following symlinks); false on any error. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** True when `path` exists itself (a dangling symlink counts); false on any error. */
export function lexists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first symlink among the path components of `path` from its project's `.hd` down, `path`
 * itself included (null when none, or when `path` is not `.hd` or below it): the project's files
 * are untrusted, and a cloned repository may ship a `.hd/` whose links lead out of it.
 *
 * @example
 * ```ts
 * import { symlinkInState } from "./fs.ts";
 * symlinkInState("/proj/.hd/sandbox/layers"); // null unless one of them is a link
 * ```
 */
export function symlinkInState(path: string): string | null {
  const clean = path.replace(/\/+$/, "");
  const at = `${clean}/`.lastIndexOf("/.hd/");
  if (at < 0) return null;
  const parts = clean.slice(at + 1).split("/");
  let p = clean.slice(0, at);
  for (const part of parts) {
    p = `${p}/${part}`;
    try {
      if (Deno.lstatSync(p).isSymlink) return p;
    } catch { /* not there yet: created below */ }
  }
  return null;
}

/**
 * Throws a clear error when {@link symlinkInState} finds a link on the way to `path`, `path`
 * included: hd would write (or truncate) through it.
 */
export function refuseStateLink(path: string): void {
  const link = symlinkInState(path);
  if (link) {
    throw new HdError(
      `Cannot write ${path}: ${link} is a symlink`,
      "remove it (hd keeps its own state in .hd/; a project must not ship one)",
    );
  }
}

/**
 * Reads a state file of a project's `.hd/` (or any file hd wrote there itself), refusing what a
 * cloned repository could ship in its place: a symlink on the way from `.hd` down (to /dev/zero,
 * a FIFO, a file elsewhere), anything but a regular file, or more than `max` bytes. Returns null
 * when it does not exist; throws an HdError naming the path for a refused one.
 *
 * @example
 * ```ts
 * import { readStateFile } from "./fs.ts";
 * const bytes = readStateFile("/proj/.hd/up.json", 1 << 20); // null: nothing runs
 * ```
 */
export function readStateFile(path: string, max: number): Uint8Array | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const link = st.isSymlink ? path : symlinkInState(path);
  const why = link
    ? `${link} is a symlink`
    : !st.isFile
    ? "it is not a regular file"
    : st.size > max
    ? `it holds ${st.size} bytes, more than the ${max} hd writes there`
    : null;
  if (why) {
    throw new HdError(
      `Cannot read ${path}: ${why}`,
      "remove it (hd keeps its own state in .hd/; a project must not ship one)",
    );
  }
  const f = Deno.openSync(path, { read: true });
  try {
    // the file read is the one checked: a regular file, and no more than `max` bytes of it
    const now = f.statSync();
    if (!now.isFile || now.size > max) {
      throw new HdError(
        `Cannot read ${path}: it was replaced while hd opened it`,
        "run the command again; if it says so again, remove the file",
      );
    }
    const out = new Uint8Array(now.size);
    let n = 0;
    while (n < out.length) {
      const got = f.readSync(out.subarray(n));
      if (got === null || got === 0) break;
      n += got;
    }
    return out.subarray(0, n);
  } finally {
    f.close();
  }
}

/**
 * Creates directory `path` (and its parents) private to its owner: 0700. An existing one with
 * other bits is made 0700 (state and logs of hd were once created 0755).
 */
export function privateDir(path: string): void {
  refuseStateLink(path);
  Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
  const st = Deno.statSync(path);
  if (st.mode !== null && (st.mode & 0o077) !== 0) Deno.chmodSync(path, st.mode & 0o700);
}

/**
 * Opens `path` to append, creating it 0600; an existing file readable by others is made 0600.
 * Its directory is made private with {@link privateDir}.
 */
export function openPrivateAppend(path: string): Deno.FsFile {
  privateDir(path.slice(0, path.lastIndexOf("/")) || "/");
  refuseStateLink(path); // a shipped `.hd/logs/web.log` → /etc/passwd would be appended to
  const f = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  const st = f.statSync();
  if (st.mode !== null && (st.mode & 0o077) !== 0) Deno.chmodSync(path, st.mode & 0o700);
  return f;
}

/** Writes `text` to `path` atomically (temp file + rename), 0600, in a private directory. */
export function writePrivateAtomic(path: string, text: string): void {
  privateDir(path.slice(0, path.lastIndexOf("/")) || "/");
  const tmp = `${path}.${Deno.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, text, { mode: 0o600 });
    Deno.chmodSync(tmp, 0o600); // mode applies only on creation, and under the umask
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not created */ }
    throw e;
  }
}

/**
 * True when some process holds a `flock` on the lock file `path` (probed by taking it shared and
 * dropping it at once); false when the file is missing or nobody holds it.
 *
 * @example
 * ```ts
 * import { lockHeld } from "./fs.ts";
 * console.log(lockHeld("/tmp/store/mounts/server.lock")); // false: no such file
 * ```
 */
export function lockHeld(path: string): boolean {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch {
    return false;
  }
  try {
    return !f.tryLockSync(false); // (closing the file drops the shared lock)
  } finally {
    f.close();
  }
}

/**
 * The pid a lock's holder wrote in the lock file `path` (for messages only: never signalled), or
 * null when there is none or it is not a plain positive integer.
 *
 * @example
 * ```ts
 * import { lockPid } from "./fs.ts";
 * console.log(lockPid("/nonexistent.lock")); // null
 * ```
 */
export function lockPid(path: string): number | null {
  try {
    const t = Deno.readTextFileSync(path).trim();
    return /^[1-9]\d{0,9}$/.test(t) ? Number(t) : null;
  } catch {
    return null;
  }
}
