/**
 * How the store writes a file: whole or not at all. Every file the store makes (loose objects,
 * packs, refs, leases, GENERATION, KEY) is written to a temp file in the store's tmp/ and renamed
 * (KEY: hard-linked) into place; tmp/ is inside the store, so the rename never crosses a
 * filesystem and readers never see a partial file. A temp file left by a crash is swept by gc
 * after an hour.
 *
 * @example
 * ```ts
 * import { tempPath, writeAtomic } from "./atomic.ts";
 * const dir = Deno.makeTempDirSync();
 * writeAtomic(dir, `${dir}/out`, new TextEncoder().encode("whole or nothing\n"), { fsync: true });
 * console.log(tempPath(dir, "key")); // <dir>/key.<pid>.<n>.<random>
 * ```
 * @module
 */
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
