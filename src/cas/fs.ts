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
