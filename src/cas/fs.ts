/**
 * Small filesystem helpers shared by every module (the store is the lowest module, so they live
 * beside it), and the store's one way of writing a file: temp file + rename ({@link writeAtomic}),
 * used by its loose objects, packs, refs, leases and generation alike.
 *
 * @example
 * ```ts
 * import { exists, writeAtomic } from "./fs.ts";
 * if (!exists("/dev/fuse")) console.log("no FUSE here");
 * const dir = Deno.makeTempDirSync();
 * writeAtomic(dir, `${dir}/out`, new TextEncoder().encode("whole or nothing\n"), { fsync: true });
 * ```
 * @module
 */

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

let tmpCounter = 0;

/** A fresh temp path in `dir` (the store's tmp/: same filesystem, so a rename is atomic). */
export function tempPath(dir: string, label = "obj"): string {
  return `${dir}/${label}.${Deno.pid}.${tmpCounter++}.${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Writes `data` to `dest` atomically: a temp file in `tmpDir`, optional fsync, rename. When a
 * directory is missing (manual cleanup of a fan-out directory), makes it and retries once.
 */
export function writeAtomic(
  tmpDir: string,
  dest: string,
  data: Uint8Array,
  opts: { fsync?: boolean } = {},
): void {
  const tmp = tempPath(tmpDir);
  try {
    if (opts.fsync) {
      const f = Deno.openSync(tmp, { write: true, createNew: true });
      try {
        let off = 0;
        while (off < data.length) off += f.writeSync(data.subarray(off));
        f.syncSync();
      } finally {
        f.close();
      }
    } else {
      Deno.writeFileSync(tmp, data);
    }
    Deno.renameSync(tmp, dest);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    if (e instanceof Deno.errors.NotFound) {
      Deno.mkdirSync(tmpDir, { recursive: true });
      Deno.mkdirSync(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
      Deno.writeFileSync(tmp, data);
      Deno.renameSync(tmp, dest);
      return;
    }
    throw e;
  }
}
