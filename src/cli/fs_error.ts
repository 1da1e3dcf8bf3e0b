/**
 * Foreseeable filesystem errors as user errors: a Deno error such as
 * `Is a directory (os error 21): readfile '/home/u/.hd/refs/envs/web'` becomes
 * `Cannot read /home/u/.hd/refs/envs/web: it is a directory` with a hint that says what to do,
 * instead of "this looks like a bug in hd". Anything else is left to the caller.
 *
 * @example
 * ```ts
 * import { fsErrorToHdError } from "./fs_error.ts";
 * try { Deno.readTextFileSync("/tmp"); } catch (e) { console.log(fsErrorToHdError(e)?.message); }
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/** What Deno's operation names mean, for the message (`Cannot <verb> <path>`). */
const VERBS: Record<string, string> = {
  readfile: "read",
  writefile: "write",
  open: "open",
  mkdir: "create the directory",
  readdir: "list",
  remove: "remove",
  rename: "rename",
  stat: "inspect",
  lstat: "inspect",
  realpath: "resolve",
  readlink: "read the link",
  symlink: "create the link",
  link: "link",
  copy: "copy",
  chmod: "change the mode of",
  chown: "change the owner of",
  truncate: "truncate",
  utime: "set the times of",
  maketempdir: "create a directory in",
  maketempfile: "create a file in",
};

/** Why, and what to do, by errno name. */
const REASONS: Record<string, (path: string) => [string, string]> = {
  EISDIR: (p) => [
    "it is a directory where hd expects a file",
    `move ${p} away (it was not made by hd), then run the command again`,
  ],
  ENOTDIR: (p) => [
    "a part of the path is a file where hd expects a directory",
    `check each parent of ${p}; move the file that is in the way`,
  ],
  EACCES: (p) => [
    "permission denied",
    `check the owner and mode of ${p} and of its directories (\`ls -ld\`)`,
  ],
  EPERM: (p) => [
    "operation not permitted",
    `check the owner, mode and attributes of ${p} (\`ls -ld\`, \`lsattr\`)`,
  ],
  ENOSPC: (p) => [
    "no space left on the device",
    `free space on the filesystem of ${p} (\`df -h\`); \`hd cas gc\` removes unused objects`,
  ],
  EDQUOT: (p) => ["disk quota exceeded", `free space within your quota on the filesystem of ${p}`],
  ELOOP: (p) => ["too many levels of symbolic links", `fix or remove the symlink loop at ${p}`],
  EROFS: (p) => [
    "the filesystem is read-only",
    `use a writable location (for the store: --store DIR or HD_HOME) instead of ${p}`,
  ],
  ENOENT: (p) => [
    "no such file or directory",
    `check that ${p} exists (another process may have removed it)`,
  ],
  ENAMETOOLONG: (p) => ["the name is too long", `use a shorter path than ${p}`],
  EMFILE: () => ["too many open files", "raise the limit (`ulimit -n`) and run the command again"],
  ENFILE: () => ["too many open files on the system", "close other programs and try again"],
  EEXIST: (p) => ["it already exists", `move ${p} away, then run the command again`],
  ENOTEMPTY: (p) => ["the directory is not empty", `empty or move ${p}`],
  EXDEV: (p) => ["it is on another filesystem", `keep ${p} on the same filesystem as its target`],
  EIO: (
    p,
  ) => ["input/output error", `the disk or filesystem of ${p} has a problem (see \`dmesg\`)`],
};

/** The errno name of a Deno error (its `code`, or the `os error N` in its message). */
function errnoName(e: Error): string | null {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && code in REASONS) return code;
  const n = /\(os error (\d+)\)/.exec(e.message)?.[1];
  const byNumber: Record<string, string> = {
    "1": "EPERM",
    "2": "ENOENT",
    "5": "EIO",
    "13": "EACCES",
    "17": "EEXIST",
    "18": "EXDEV",
    "20": "ENOTDIR",
    "21": "EISDIR",
    "23": "ENFILE",
    "24": "EMFILE",
    "28": "ENOSPC",
    "30": "EROFS",
    "36": "ENAMETOOLONG",
    "39": "ENOTEMPTY",
    "40": "ELOOP",
    "122": "EDQUOT",
  };
  return n ? byNumber[n] ?? null : null;
}

/**
 * The user error for a foreseeable filesystem error (`Cannot <verb> <path>: <why>` with a hint),
 * or null when `e` is not one (a bug, then).
 */
export function fsErrorToHdError(e: unknown): HdError | null {
  if (!(e instanceof Error)) return null;
  const name = errnoName(e);
  if (name === null) return null;
  // Deno: "<text> (os error N): <op> '<path>'" or "… <op> '<from>' -> '<to>'"
  const m = /\(os error \d+\)(?:: (\w+) '([^']*)'(?: -> '([^']*)')?)?/.exec(e.message);
  if (!m || m[2] === undefined) return null; // no path: nothing to name
  const verb = VERBS[m[1].toLowerCase()] ?? m[1];
  const path = m[2];
  const [why, hint] = REASONS[name](path);
  const what = m[3] !== undefined ? `${path} to ${m[3]}` : path;
  return new HdError(`Cannot ${verb} ${what}: ${why}`, hint);
}
