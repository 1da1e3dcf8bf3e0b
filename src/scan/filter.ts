/**
 * Path filters from [files] include/exclude globs, with the meaning of src/sys/glob.ts (a pattern
 * that names a directory covers everything below it: `src` means `src` and `src/**`; dotfiles
 * match). The default excludes are always applied.
 *
 * @example
 * ```ts
 * import { PathFilter } from "./filter.ts";
 * const f = new PathFilter(["src/**"], ["**\/*.log"]);
 * f.includesFile("src/a.ts"); // true
 * ```
 * @module
 */
import { cleanGlob, globMatcher } from "../sys/glob.ts";

/** Paths never tracked: VCS data, hd's own state, caches and OS litter. */
export const DEFAULT_EXCLUDES: readonly string[] = [
  "**/.git",
  ".hd",
  "**/node_modules/.cache",
  "**/.DS_Store",
  "target",
];

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
    this.#inc = include.length ? globMatcher(include) : null;
    this.#exc = globMatcher(this.exclude);
    const names = new Set<string>();
    for (const p of this.exclude) {
      const last = cleanGlob(p).split("/").pop() ?? "";
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

  /**
   * {@link excluded} for an entry named `name` (the last segment of `rel`) whose parent directories
   * are known not to be excluded, as in a walk that does not enter excluded directories. When every
   * exclude pattern ends in a literal name, a path can only be excluded by a pattern matching it
   * (its last segment is then one of those names) or one of its parents, so one Set lookup
   * answers for almost every entry without splitting the path.
   */
  excludedEntry(rel: string, name: string): boolean {
    if (this.#excNames !== null && !this.#excNames.has(name)) return false;
    return this.#exc(rel);
  }

  /** {@link includesFile} for a file already found not excluded ({@link excludedEntry}). */
  includesUnexcluded(rel: string): boolean {
    return this.#inc === null || this.#inc(rel);
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
