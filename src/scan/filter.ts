/**
 * Path filters from [files] include/exclude globs (picomatch, dotfiles matched). A pattern that
 * names a directory covers everything below it (`src` means `src` and `src/**`). The default
 * excludes are always applied.
 *
 * @example
 * ```ts
 * import { PathFilter } from "./filter.ts";
 * const f = new PathFilter(["src/**"], ["**\/*.log"]);
 * f.includesFile("src/a.ts"); // true
 * ```
 * @module
 */
// @ts-types="npm:@types/picomatch@4.0.3"
import picomatch from "picomatch";

/** Paths never tracked: VCS data, hd's own state, caches and OS litter. */
export const DEFAULT_EXCLUDES: readonly string[] = [
  "**/.git",
  ".hd",
  "**/node_modules/.cache",
  "**/.DS_Store",
  "target",
];

function expand(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (let p of patterns) {
    p = p.replace(/^\.\//, "").replace(/\/+$/, "");
    if (p === "") continue;
    out.push(p);
    if (!p.endsWith("/**")) out.push(`${p}/**`);
  }
  return out;
}

/** Decides which relative paths of a tree are tracked. */
export class PathFilter {
  /** Include patterns as given (empty = everything). */
  readonly include: readonly string[];
  /** Exclude patterns as given, plus the defaults. */
  readonly exclude: readonly string[];
  #inc: ((p: string) => boolean) | null;
  #exc: (p: string) => boolean;
  /** When every exclude pattern ends in a literal name, only paths ending in one can match. */
  #excNames: Set<string> | null;

  constructor(include: readonly string[] = [], exclude: readonly string[] = []) {
    this.include = include;
    this.exclude = [...DEFAULT_EXCLUDES, ...exclude];
    const opts = { dot: true };
    this.#inc = include.length ? picomatch(expand(include), opts) : null;
    this.#exc = picomatch(expand(this.exclude), opts);
    const names = new Set<string>();
    for (const p of this.exclude) {
      const last = p.replace(/\/+$/, "").split("/").pop() ?? "";
      if (/[*?[\]{}()!+@]/.test(last) || last === "") {
        this.#excNames = null;
        return;
      }
      names.add(last);
    }
    this.#excNames = names;
  }

  #excluded(rel: string): boolean {
    if (this.#excNames !== null) {
      // A pattern "a/b" also covers "a/b/**": check every segment, cheaply, before picomatch.
      let hit = false;
      let start = 0;
      while (start <= rel.length) {
        let end = rel.indexOf("/", start);
        if (end < 0) end = rel.length;
        if (this.#excNames.has(rel.slice(start, end))) {
          hit = true;
          break;
        }
        start = end + 1;
      }
      if (!hit) return false;
    }
    return this.#exc(rel);
  }

  /** True when a path (file or directory) is excluded; excluded directories are not entered. */
  excluded(rel: string): boolean {
    return this.#excluded(rel);
  }

  /** True when a file at `rel` is tracked. */
  includesFile(rel: string): boolean {
    if (this.#excluded(rel)) return false;
    return this.#inc === null || this.#inc(rel);
  }

  /** True when an empty directory at `rel` is kept (only without include patterns, or matched). */
  keepsEmptyDir(rel: string): boolean {
    return this.#inc === null || this.#inc(rel);
  }
}
