/**
 * hd never watches its own output: `hd up > up.log` inside the project would otherwise see each
 * line it prints as an edit, print the new root, see that, and so on. The files of the project
 * that hd's own process has open for writing (its stdout and stderr redirected there, any other
 * descriptor open for writing) are left out of the tracked files and of the watcher.
 *
 * @example
 * ```ts
 * import { ownOutputFiles } from "./own_output.ts";
 * const skip = ownOutputFiles("/home/me/app"); // ["up.log"] under `hd up > up.log`
 * ```
 * @module
 */

/** One open descriptor: what it points at and its open flags (octal, /proc/PID/fdinfo). */
export interface OpenFile {
  path: string;
  flags: number;
}

const O_ACCMODE = 0o3;
const GLOB = /[*?[\]{}!\\]/;

/**
 * The project-relative paths among `open` that are opened for writing (O_WRONLY or O_RDWR) and
 * lie inside the project `dir` (not in `.hd/`, which is never tracked anyway), sorted, once each.
 * Paths with glob characters are left out (they cannot be excluded by name). Pure.
 */
export function writtenInProject(open: readonly OpenFile[], dir: string): string[] {
  const root = dir.endsWith("/") ? dir : dir + "/";
  const out = new Set<string>();
  for (const f of open) {
    if ((f.flags & O_ACCMODE) === 0) continue; // read-only
    if (!f.path.startsWith(root)) continue;
    const rel = f.path.slice(root.length);
    if (rel === "" || rel.endsWith(" (deleted)") || rel === ".hd" || rel.startsWith(".hd/")) {
      continue;
    }
    if (GLOB.test(rel)) continue;
    out.add(rel);
  }
  return [...out].sort();
}

/** The files of this process's open descriptors with their flags (from /proc/self). */
export function openFiles(): OpenFile[] {
  const out: OpenFile[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc/self/fd")];
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      const path = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      if (!path.startsWith("/")) continue; // pipe:, socket:, anon_inode:
      const info = Deno.readTextFileSync(`/proc/self/fdinfo/${e.name}`);
      const m = /^flags:\s+([0-7]+)/m.exec(info);
      if (m) out.push({ path, flags: parseInt(m[1], 8) });
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** The project files hd's own process writes to now (see the module doc). */
export function ownOutputFiles(dir: string): string[] {
  let real = dir;
  try {
    real = Deno.realPathSync(dir);
  } catch { /* as given */ }
  return writtenInProject(openFiles(), real);
}
