/**
 * Where a project's hd.toml is: the nearest one from the cwd up. Kept apart from the parser so
 * that `hd up -d` can find the project (to start its supervisor) before loading anything else.
 *
 * @example
 * ```ts
 * import { findSpecFile } from "./find.ts";
 * const file = findSpecFile(); // "/work/proj/hd.toml", or throws "Cannot find hd.toml: …"
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/** The file name hd looks for. */
export const SPEC_FILE = "hd.toml";

/** Finds hd.toml in `start` or the nearest parent directory; throws when there is none. */
export function findSpecFile(start: string = Deno.cwd()): string {
  let dir = start.startsWith("/") ? start : `${Deno.cwd()}/${start}`;
  dir = dir.replace(/\/+$/, "") || "/";
  const first = dir;
  while (true) {
    const candidate = dir === "/" ? `/${SPEC_FILE}` : `${dir}/${SPEC_FILE}`;
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch { /* keep looking */ }
    if (dir === "/") break;
    dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
  }
  throw new HdError(
    `Cannot find hd.toml: none in ${first} or any parent directory`,
    "run `hd init` to create one here, or pass --file PATH",
  );
}

/** The absolute path of `file` (relative to the cwd), as commands take `--file`. */
export function absSpecPath(file: string): string {
  return file.startsWith("/") ? file : `${Deno.cwd()}/${file}`.replace(/\/\.\//g, "/");
}

/** The hd.toml a command works on: `--file PATH` when given, else the one found from the cwd. */
export function specFilePath(file?: string): string {
  return file === undefined ? findSpecFile() : absSpecPath(file);
}

/** Shows a path for messages relative to the current directory when it sits below it. */
export function displayPath(file: string): string {
  let cwd = "";
  try {
    cwd = Deno.cwd();
  } catch { /* no cwd */ }
  if (cwd && file.startsWith(cwd + "/")) return file.slice(cwd.length + 1);
  return file;
}
