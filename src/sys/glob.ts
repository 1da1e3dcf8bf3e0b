/**
 * What a glob of hd.toml means, once. `[files]` include/exclude, step `inputs`, service `watch` and
 * step `outputs` are globs relative to the project root, and docs/hdtoml.md promises one rule: a
 * pattern naming a directory covers everything below it (`src` is `src` and `src/**`), `**`
 * crosses directories and dotfiles match. Four modules once normalised patterns each their own way
 * (one dropped `""`, one did not expand a glob to what lies below its matches, one computed the
 * static prefix of `src/a*.js` as `src/a`); they all use these functions now. The matching itself
 * is picomatch's.
 *
 * @example
 * ```ts
 * import { globMatcher } from "./glob.ts";
 * const m = globMatcher(["src", "*.json", "./docs/"]);
 * console.log(m("src/lib/a.ts"), m("package.json"), m("docs/x.md"), m("README.md")); // true true true false
 * ```
 * @module
 */
// @ts-types="npm:@types/picomatch@4.0.3"
import picomatch from "picomatch";

/**
 * The pattern as written, without leading `./` and trailing `/`; `""` when it names the project
 * itself (`""`, `"."`, `"./"`).
 *
 * @example
 * ```ts
 * import { cleanGlob } from "./glob.ts";
 * console.log(cleanGlob("./src/"), cleanGlob("."), cleanGlob("**\/*.log")); // "src" "" "**\/*.log"
 * ```
 */
export function cleanGlob(pattern: string): string {
  let p = pattern;
  while (p.startsWith("./")) p = p.slice(2);
  p = p.replace(/\/+$/, "");
  return p === "." ? "" : p;
}

/**
 * The picomatch patterns one project glob stands for: itself and everything below what it
 * matches (`src/*` → `src/*`, `src/*\/**`); `**` for the project itself.
 *
 * @example
 * ```ts
 * import { normalizeGlob } from "./glob.ts";
 * console.log(normalizeGlob("./src/")); // ["src", "src/**"]
 * console.log(normalizeGlob("src/**"), normalizeGlob(".")); // ["src/**"] ["**"]
 * ```
 */
export function normalizeGlob(pattern: string): string[] {
  const p = cleanGlob(pattern);
  if (p === "") return ["**"];
  return p === "**" || p.endsWith("/**") ? [p] : [p, `${p}/**`];
}

/**
 * A test of project-relative paths (no leading `./` or `/`) against `patterns`: true when one of
 * them, normalised by {@link normalizeGlob}, matches. No pattern matches nothing.
 *
 * @example
 * ```ts
 * import { globMatcher } from "./glob.ts";
 * const m = globMatcher(["**\/*.log", "dist"]);
 * console.log(m("a/b.log"), m("dist/app.js"), m(".env"), globMatcher([])("x")); // true true false false
 * ```
 */
export function globMatcher(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  return picomatch(patterns.flatMap(normalizeGlob), { dot: true });
}

/**
 * The directory every match of `pattern` lies in or below (its static prefix, up to the last `/`
 * before the first wildcard); `""` for the project root. For a plain path it is the path itself.
 *
 * @example
 * ```ts
 * import { globBase } from "./glob.ts";
 * console.log(globBase("src/a*.js"), globBase("src/**\/*.js"), globBase("lib/x"), globBase("*.json"));
 * // "src" "src" "lib/x" ""
 * ```
 */
export function globBase(pattern: string): string {
  const p = cleanGlob(pattern);
  return p === "" ? "" : picomatch.scan(p).base.replace(/\/+$/, "");
}
