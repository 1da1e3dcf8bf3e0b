/**
 * Glob sets over project-relative paths: which services watch a changed path, which build steps
 * declared it as an input. A pattern naming a directory covers everything below it.
 *
 * @example
 * ```ts
 * import { GlobSet } from "./pathmap.ts";
 * const g = new GlobSet(["api/**", "package.json"]);
 * g.matches("api/server.js"); // true
 * ```
 * @module
 */
import { globMatcher } from "../sys/glob.ts";

/** A set of project globs (their meaning is src/sys/glob.ts's). */
export class GlobSet {
  /** The patterns as given. */
  readonly patterns: readonly string[];
  #m: (p: string) => boolean;

  constructor(patterns: readonly string[]) {
    this.patterns = patterns;
    this.#m = globMatcher(patterns);
  }

  /** True when `rel` (a project-relative path) matches one of the patterns. */
  matches(rel: string): boolean {
    return this.#m(rel);
  }

  /** The paths of `rels` that match. */
  filter(rels: Iterable<string>): string[] {
    return [...rels].filter((r) => this.matches(r));
  }
}

/** For each name, the paths of `changed` its globs match (names with no match are left out). */
export function affected(
  globs: Record<string, GlobSet>,
  changed: Iterable<string>,
): Map<string, string[]> {
  const list = [...changed];
  const out = new Map<string, string[]>();
  for (const [name, g] of Object.entries(globs)) {
    const hit = g.filter(list);
    if (hit.length) out.set(name, hit);
  }
  return out;
}
