/**
 * A running `hd up` whose project directory is deleted (or moved away, or replaced by another
 * directory of the same name) has nothing left to watch or build: it should stop its services
 * and exit rather than run on, orphaned. This module decides when that is, from the directory's
 * identity at the start and now; the session (src/services/session.ts) looks every second.
 *
 * @example
 * ```ts
 * import { dirIdentity, rootGoneReason } from "./root_gone.ts";
 * const start = dirIdentity("/proj");
 * // … later
 * const why = rootGoneReason("/proj", start, dirIdentity("/proj"));
 * if (why !== null) console.log(`stopping: ${why}`);
 * ```
 * @module
 */

/** Which directory a path named: its device and inode. */
export interface DirIdentity {
  dev: number;
  ino: number;
}

/**
 * The identity of directory `dir` now: null when nothing (or no directory) is there, "unknown"
 * when it cannot be told (a permission error, a platform without inode numbers).
 */
export function dirIdentity(dir: string): DirIdentity | null | "unknown" {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(dir);
  } catch (e) {
    return e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory
      ? null
      : "unknown";
  }
  if (!st.isDirectory) return null;
  return st.ino === null ? "unknown" : { dev: st.dev, ino: st.ino };
}

/**
 * Why the project at `dir` is gone (a line for the log), or null while it is there — and
 * whenever it cannot be told for sure (no identity at the start, or "unknown" now): stopping
 * services is not done on a guess.
 */
export function rootGoneReason(
  dir: string,
  start: DirIdentity | null | "unknown",
  now: DirIdentity | null | "unknown",
): string | null {
  if (start === null || start === "unknown" || now === "unknown") return null;
  if (now === null) return `the project directory ${dir} was deleted (or moved away)`;
  if (now.dev !== start.dev || now.ino !== start.ino) {
    return `the project directory ${dir} was replaced by another directory`;
  }
  return null;
}
