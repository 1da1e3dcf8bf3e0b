/**
 * lstat(2) of many paths, fast: a project scan lstats every file, and `Deno.lstatSync` builds a
 * FileInfo with three Date objects and a dozen fields per call (about twice the cost of the call
 * itself). {@link lstatLight} calls libc's `fstatat` through ffi/libc.ts into one reused buffer
 * and returns only what a scan uses. It falls back to `Deno.lstatSync` where the struct layout is
 * not known (not x86_64 Linux), where libc cannot be opened (no --allow-ffi), for times before
 * 1970, and on any error, so errors are Deno's own.
 *
 * @example
 * ```ts
 * import { lstatLight } from "./lstat.ts";
 * const st = lstatLight("/etc/hostname");
 * console.log(st.isFile, st.size, st.mtime);
 * ```
 * @module
 */
import { type LibcStat, openLibcStat } from "../../ffi/libc.ts";

/** What a scan needs of an lstat; times in whole milliseconds as `FileInfo.mtime.getTime()`. */
export interface LightStat {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  /** st_mode, with the file type bits. */
  mode: number;
  size: number;
  /** mtime in ms since the epoch (0 when unknown). */
  mtime: number;
  /** ctime in ms since the epoch (0 when unknown). */
  ctime: number;
  ino: number;
  dev: number;
  nlink: number;
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const S_IFMT = 0o170000;

let lib: LibcStat | null | undefined;
const statBuf = new Uint8Array(144); // sizeof(struct stat) on x86_64
const view = new DataView(statBuf.buffer);
let pathBuf = new Uint8Array(4096);
const te = new TextEncoder();

function open(): LibcStat | null {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return null;
  try {
    return openLibcStat();
  } catch {
    return null;
  }
}

/** The light record of a Deno FileInfo (the fallback; also what tests compare against). */
export function fromFileInfo(st: Deno.FileInfo): LightStat {
  return {
    isFile: st.isFile,
    isDirectory: st.isDirectory,
    isSymlink: st.isSymlink,
    mode: st.mode ?? 0,
    size: st.size,
    mtime: st.mtime?.getTime() ?? 0,
    ctime: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
    dev: st.dev ?? 0,
    nlink: st.nlink ?? 0,
  };
}

/** lstat of `path` (not following a final symlink); throws Deno's error when it fails. */
export function lstatLight(path: string): LightStat {
  if (lib === undefined) lib = open();
  if (lib !== null && path.indexOf("\0") < 0) {
    if (pathBuf.length < path.length * 3 + 1) pathBuf = new Uint8Array(path.length * 3 + 1);
    const { written } = te.encodeInto(path, pathBuf);
    pathBuf[written] = 0;
    if (lib.symbols.fstatat(AT_FDCWD, pathBuf, statBuf, AT_SYMLINK_NOFOLLOW) === 0) {
      // struct stat (x86_64): dev 0, ino 8, nlink 16, mode 24, size 48, mtim 88/96, ctim 104
      const mSec = Number(view.getBigInt64(88, true));
      const cSec = Number(view.getBigInt64(104, true));
      if (mSec >= 0 && cSec >= 0) {
        const mode = view.getUint32(24, true);
        const type = mode & S_IFMT;
        return {
          isFile: type === 0o100000,
          isDirectory: type === 0o040000,
          isSymlink: type === 0o120000,
          mode,
          size: Number(view.getBigInt64(48, true)),
          mtime: mSec * 1000 + Math.floor(Number(view.getBigInt64(96, true)) / 1e6),
          ctime: cSec * 1000, // Deno's FileInfo.ctime has whole seconds: the same signature
          ino: Number(view.getBigUint64(8, true)),
          dev: Number(view.getBigUint64(0, true)),
          nlink: Number(view.getBigUint64(16, true)),
        };
      }
    }
  }
  return fromFileInfo(Deno.lstatSync(path));
}

/**
 * Words of the x86_64 `struct stat` (as u32) that identify what a path holds: inode (2), st_mode,
 * size (2), mtime seconds (2) and nanoseconds, ctime seconds (2) and nanoseconds. Two equal sets
 * mean nothing was written to the path in between: any write moves ctime, which cannot be set
 * back. For proofs that a scanned tree is unchanged (src/env/quick_status.ts).
 */
export const STAT_WORDS = 11;
const WORD_AT = [2, 3, 6, 12, 13, 22, 23, 24, 26, 27, 28];
const statU32 = new Uint32Array(statBuf.buffer);
const AT_O_PATH = 0o10000000;
const AT_O_DIRECTORY = 0o200000;

/**
 * A directory that {@link statWords} looks names up below, or null where the fast lstat is not
 * available (not x86_64 Linux, no --allow-ffi) or `path` cannot be opened. Close it with
 * {@link closeDir}.
 */
export function openDir(path: string): number | null {
  if (lib === undefined) lib = open();
  if (lib === null || path.indexOf("\0") >= 0) return null;
  const fd = lib.symbols.openat(AT_FDCWD, te.encode(path + "\0"), AT_O_PATH | AT_O_DIRECTORY);
  return fd >= 0 ? fd : null;
}

/** Closes a directory of {@link openDir}. */
export function closeDir(fd: number): void {
  lib?.symbols.close(fd);
}

/**
 * lstat of `name` (NUL-terminated bytes, relative to `dir` from {@link openDir}) into
 * `out[at .. at + STAT_WORDS)`; false (and zeros there) when it cannot be lstat'ed.
 */
export function statWords(dir: number, name: Uint8Array, out: Uint32Array, at: number): boolean {
  if (lib!.symbols.fstatat(dir, name, statBuf, AT_SYMLINK_NOFOLLOW) !== 0) {
    out.fill(0, at, at + STAT_WORDS);
    return false;
  }
  for (let k = 0; k < STAT_WORDS; k++) out[at + k] = statU32[WORD_AT[k]];
  return true;
}

/**
 * Whether the `count` NUL-terminated names of `names` (relative to `dir` from {@link openDir};
 * `names` must end with a NUL) all still lstat to `saved` (name `i` to the words {@link statWords}
 * wrote at `saved[i * STAT_WORDS ..]`; all zeros: recorded absent, still absent), stopping at the
 * first that does not; false too when `names` holds another number of names.
 */
export function statAllMatch(
  dir: number,
  names: Uint8Array,
  count: number,
  saved: Uint32Array,
): boolean {
  const at: StatCursor = { i: 0, off: 0 };
  return statMismatch(dir, names, count, saved, at) && at.i === count;
}

/** Where {@link statMismatch} goes on from: the index of a name and its first byte in `names`. */
export interface StatCursor {
  i: number;
  off: number;
}

/**
 * From `at` on, lstats the names of `names` as {@link statAllMatch} does and stops at the first
 * whose words differ from `saved`, leaving `at` on it (`at.i === count` when none did). False
 * when `names` does not hold `count` names (malformed: nothing may be concluded). To go on past a
 * mismatch, move `at` to the next name ({@link nextName}).
 *
 * One loop that hands libc the address of each name in place (no typed array made per name; a
 * bigint, since V8's fast call takes a 64-bit argument only from one: 10k paths warm ~14 ms, with
 * numbers ~20) and compares the words unrolled.
 */
export function statMismatch(
  dir: number,
  names: Uint8Array,
  count: number,
  saved: Uint32Array,
  at: StatCursor,
): boolean {
  if (names.length === 0) return count === 0;
  if (names[names.length - 1] !== 0 || saved.length < count * STAT_WORDS) return false;
  const f = lib!.symbols.fstatat_addr;
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(names));
  const buf = Deno.UnsafePointer.value(Deno.UnsafePointer.of(statBuf));
  if (base === 0n || buf === 0n) return false;
  const s = statU32;
  let off = at.off;
  let i = at.i;
  for (let w = i * STAT_WORDS; i < count; i++, w += STAT_WORDS) {
    if (off >= names.length) return false;
    // a bigint: V8 takes its fast call for a 64-bit argument only from one (a number: never)
    if (f(dir, base + BigInt(off), buf, AT_SYMLINK_NOFOLLOW) !== 0) {
      if (saved[w + 2] !== 0) break; // recorded present (absent: no st_mode)
    } else if (
      // WORD_AT, unrolled: ino, mode, size, mtime, ctime (the likeliest to differ first)
      saved[w + 8] !== s[26] || saved[w + 10] !== s[28] || saved[w + 9] !== s[27] ||
      saved[w] !== s[2] || saved[w + 1] !== s[3] || saved[w + 2] !== s[6] ||
      saved[w + 3] !== s[12] || saved[w + 4] !== s[13] || saved[w + 5] !== s[22] ||
      saved[w + 6] !== s[23] || saved[w + 7] !== s[24]
    ) break;
    off = names.indexOf(0, off) + 1;
  }
  at.i = i;
  at.off = off;
  return i < count || off === names.length;
}

/** Moves `at` past the name it is on (the next name of a {@link statMismatch} scan). */
export function nextName(names: Uint8Array, at: StatCursor): void {
  at.off = names.indexOf(0, at.off) + 1;
  at.i++;
}

/** The ctime of the words at `at` (as {@link statWords} writes them), in ms since the epoch. */
export function wordsCtimeMs(words: Uint32Array, at: number): number {
  return (words[at + 8] + words[at + 9] * 4294967296) * 1000 + words[at + 10] / 1e6;
}
