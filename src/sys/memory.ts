/**
 * Giving memory back in a long-lived process (the store's mount server): V8's full collection
 * ({@link fullGc}) and glibc's `malloc_trim` ({@link releaseFreedMemory}). Both are asked for only
 * at quiet moments — after a mount has ended, or a large unload of inodes — never per request.
 *
 * @example
 * ```ts
 * import { fullGc, releaseFreedMemory } from "./memory.ts";
 * fullGc()?.(); // unreachable objects (and the native memory they hold) are freed now
 * releaseFreedMemory(); // true where glibc gave its free pages back
 * ```
 * @module
 */
import { openLibcTrim } from "../../ffi/libc.ts";
import { nodeBuiltin } from "./lazy.ts";

let gcFn: (() => void) | null | undefined;

/**
 * V8's full collection, exposed at run time (node:v8 setFlagsFromString, then node:vm) the first
 * time it is needed, or null where that fails. Not `--expose-gc` on the command line: a V8 flag
 * there changes the flag hash of V8's code cache, so a server started with it recompiled its
 * modules on every start (mount → serving 250 vs 193 ms, 8 alternated rounds, load 3).
 */
export function fullGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    nodeBuiltin<typeof import("node:v8")>("node:v8").setFlagsFromString("--expose-gc");
    const f = nodeBuiltin<typeof import("node:vm")>("node:vm").runInNewContext("gc");
    gcFn = typeof f === "function" ? f as () => void : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

let trim: { symbols: { malloc_trim(pad: number | bigint): number } } | null | undefined;

/**
 * Gives the free pages of the C heap back to the system (glibc's `malloc_trim(0)`): what a FUSE
 * session, its buffers and the native side of freed ArrayBuffers leave behind stays counted in
 * the process's RSS until then. False where it cannot (no FFI permission, or a libc without it).
 */
export function releaseFreedMemory(): boolean {
  if (trim === undefined) {
    try {
      trim = openLibcTrim();
    } catch {
      trim = null;
    }
  }
  if (trim === null) return false;
  trim.symbols.malloc_trim(0);
  return true;
}
