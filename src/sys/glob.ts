/**
 * What a glob of hd.toml means, once. `[files]` include/exclude, step `inputs`, service `watch` and
 * step `outputs` are globs relative to the project root, and docs/hdtoml.md promises one rule: a
 * pattern naming a directory covers everything below it (`src` is `src` and `src/**`), `**`
 * crosses directories and dotfiles match. Four modules once normalised patterns each their own way
 * (one dropped `""`, one did not expand a glob to what lies below its matches, one computed the
 * static prefix of `src/a*.js` as `src/a`); they all use these functions now.
 *
 * The matching is hd's own (a pattern becomes one RegExp), with picomatch's meaning (`dot: true`)
 * on the syntax hd.toml accepts — `*`, `**`, `?`, `[...]` (`[^...]`), `{a,b}` and `\` escapes;
 * tests/sys/glob_test.ts compares the two on a table of patterns and paths. picomatch itself is
 * CommonJS: importing it brought Deno's Node compatibility layer (~40 ms) into the start of every
 * `hd up` supervisor. What picomatch reads otherwise (extglobs, `(a|b)` groups, a leading `!`,
 * `{1..3}` ranges, POSIX classes, ...) hd.toml refuses ({@link globSyntaxError}); here those
 * characters are literal (as in a step's `outputs`, which are paths).
 *
 * @example
 * ```ts
 * import { globMatcher } from "./glob.ts";
 * const m = globMatcher(["src", "*.json", "./docs/"]);
 * console.log(m("src/lib/a.ts"), m("package.json"), m("docs/x.md"), m("README.md")); // true true true false
 * ```
 * @module
 */

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
 * The patterns one project glob stands for: itself and everything below what it
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
  const all = patterns.flatMap(normalizeGlob);
  const re = new RegExp(`^(?:${all.map(globSource).join("|")})$`);
  // as picomatch: a path equal to a pattern matches it (`src/[a].js` names that file too)
  const same = new Set(all);
  return (rel) => same.has(rel) || re.test(rel);
}

/**
 * Why hd.toml refuses `pattern` as a glob, or null: syntax picomatch gives a meaning hd's matcher
 * does not have (or a meaning few would guess) — an extglob or group (`(`, `)`, `|`), a leading
 * `!` (negation), a `{1..3}` range, a POSIX class (`[[:alpha:]]`), `[!a]` (picomatch: `!` or
 * `a`, not a negation), `**` inside braces (picomatch: not the directory itself) or not as a
 * whole segment.
 *
 * @example
 * ```ts
 * import { globSyntaxError } from "./glob.ts";
 * console.log(globSyntaxError("src/{a,b}/*.js")); // null
 * console.log(globSyntaxError("!dist")?.why); // "a leading ! (negation) is not supported"
 * ```
 */
export function globSyntaxError(pattern: string): { why: string; hint: string } | null {
  if (pattern.startsWith("!")) {
    return {
      why: "a leading ! (negation) is not supported",
      hint: "list what to exclude in [files] exclude",
    };
  }
  const unescaped = pattern.replace(/\\./g, "");
  if (/[()|]/.test(unescaped)) {
    return {
      why: "( ) and | (extglobs, groups) are not supported",
      hint: "use {a,b} for alternatives, \\( for a literal",
    };
  }
  if (/\{[^{}]*\.\.[^{}]*\}/.test(unescaped)) {
    return { why: "{a..b} ranges are not supported", hint: "list the alternatives, {1,2,3}" };
  }
  if (unescaped.includes("[:")) {
    return { why: "POSIX classes ([[:alpha:]]) are not supported", hint: "use [a-zA-Z]" };
  }
  if (unescaped.includes("[!")) {
    return { why: "[!...] is not supported", hint: "write a negated class as [^...]" };
  }
  for (const m of unescaped.matchAll(/\*{2,}/g)) {
    const end = m.index + m[0].length;
    const whole = m[0].length === 2 && (m.index === 0 || unescaped[m.index - 1] === "/") &&
      (end === unescaped.length || unescaped[end] === "/");
    if (!whole) {
      return {
        why: "** is supported only as a whole path segment (a/**/b, **/x, x/**)",
        hint: "use * within a name",
      };
    }
  }
  let depth = 0;
  for (let i = 0; i < unescaped.length; i++) {
    const c = unescaped[i];
    if (c === "{") depth++;
    else if (c === "}") depth = Math.max(0, depth - 1);
    else if (c === "*" && unescaped[i + 1] === "*" && depth > 0) {
      return {
        why: "** inside {...} is not supported",
        hint: "write each alternative as a pattern of its own",
      };
    }
  }
  return null;
}

const SPECIAL = /[.*+?^${}()|[\]\\]/g;

/** `c` as a literal in a RegExp. */
function lit(c: string): string {
  return c.replace(SPECIAL, "\\$&");
}

/**
 * The RegExp source (unanchored) of one cleaned glob, picomatch's meaning with `dot: true`: `*`
 * any run of characters but `/` (a whole segment: at least one), `**` as a whole segment any
 * number of segments (`a/**` matches `a` too), elsewhere as `*`; `?` one character but `/`;
 * `[...]` a class (never `/`); `{a,b}` alternatives (nested; one without a comma is literal);
 * `\\c` the character c. An unclosed `[` or `{` is literal.
 */
function globSource(p: string): string {
  let out = "";
  /** `out.length` just after the last `/` written (a globstar after it takes it in). */
  let slashEnd = -1;
  // the braces open here: true for one with alternatives, false for a literal one (no comma)
  const braces: boolean[] = [];
  const inAlt = () => braces.length > 0 && braces[braces.length - 1];
  const segStart = (i: number) =>
    i === 0 || p[i - 1] === "/" || (inAlt() && (p[i - 1] === "{" || p[i - 1] === ","));
  const segEnd = (i: number) =>
    i === p.length || p[i] === "/" || (inAlt() && (p[i] === "}" || p[i] === ","));
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\" && i + 1 < p.length) {
      out += lit(p[++i]);
    } else if (c === "*") {
      let j = i;
      while (p[j + 1] === "*") j++;
      const whole = segStart(i) && segEnd(j + 1);
      if (j === i + 1 && whole) {
        const afterSlash = i > 0 && p[i - 1] === "/" && slashEnd === out.length;
        const beforeSlash = p[j + 1] === "/";
        if (afterSlash) out = out.slice(0, -1); // the `/` is part of the globstar
        if (afterSlash && beforeSlash) (out += "/(?:.*/)?", j++); // a/**/b: a/b, a/x/y/b
        // a/**: a and everything below; as picomatch, after a star (a*/**) only what is below
        else if (afterSlash) out += p[i - 2] === "*" && p[i - 3] !== "\\" ? "/.*" : "(?:/.*)?";
        else if (beforeSlash) (out += "(?:.*/)?", j++); // **/b: b at any depth
        else out += ".*";
      } else out += whole ? "[^/]+" : "[^/]*";
      i = j;
    } else if (c === "?") {
      out += "[^/]";
    } else if (c === "[") {
      const end = classEnd(p, i);
      if (end < 0) {
        out += lit(c);
        continue;
      }
      let k = i + 1;
      let cls = "";
      if (p[k] === "!" || p[k] === "^") (cls = "^", k++);
      for (; k < end; k++) {
        let ch = p[k];
        const escaped = ch === "\\" && k + 1 < end;
        if (escaped) ch = p[++k];
        cls += /[\\\]^[]/.test(ch) || (escaped && ch === "-") ? `\\${ch}` : ch;
      }
      out += `(?!/)[${cls}]`;
      i = end;
    } else if (c === "{") {
      const alt = braceHasComma(p, i);
      braces.push(alt);
      out += alt ? "(?:" : lit(c);
    } else if (c === "," && inAlt()) {
      out += "|";
    } else if (c === "}" && braces.length) {
      out += braces.pop() ? ")" : lit(c);
    } else if (c === "/") {
      out += c;
      slashEnd = out.length;
    } else out += lit(c);
  }
  return out;
}

/** The index of the `]` closing the class opened at `i` (a `]` first in it is literal), or -1. */
function classEnd(p: string, i: number): number {
  let j = i + 1;
  if (p[j] === "!" || p[j] === "^") j++;
  if (p[j] === "]") j++;
  for (; j < p.length; j++) {
    if (p[j] === "\\") j++;
    else if (p[j] === "/") return -1;
    else if (p[j] === "]") return j;
  }
  return -1;
}

/** True when the `{` at `i` is closed and holds a comma at its own depth. */
function braceHasComma(p: string, i: number): boolean {
  let depth = 0;
  let comma = false;
  for (let j = i; j < p.length; j++) {
    const c = p[j];
    if (c === "\\") j++;
    else if (c === "{") depth++;
    else if (c === "}") {
      if (--depth === 0) return comma;
    } else if (c === "," && depth === 1) comma = true;
  }
  return false;
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
  if (p === "") return "";
  let first = -1;
  for (let i = 0; i < p.length && first < 0; i++) {
    if (p[i] === "\\") i++;
    else if ("*?[{".includes(p[i])) first = i;
  }
  if (first < 0) return p;
  return p.slice(0, Math.max(0, p.lastIndexOf("/", first))).replace(/\/+$/, "");
}
