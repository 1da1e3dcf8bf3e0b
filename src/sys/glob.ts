/**
 * What a glob of hd.toml means, once. `[files]` include/exclude, step `inputs`, service `watch` and
 * step `outputs` are globs relative to the project root, and docs/hdtoml.md promises one rule: a
 * pattern naming a directory covers everything below it (`src` is `src` and `src/**`), `**`
 * crosses directories and dotfiles match. Four modules once normalised patterns each their own way
 * (one dropped `""`, one did not expand a glob to what lies below its matches, one computed the
 * static prefix of `src/a*.js` as `src/a`); they all use these functions now.
 *
 * The matching is hd's own — one RegExp for the patterns that cannot backtrack badly, segment by
 * segment for the others (an hd.toml is untrusted: `*a*a*a*b` or several `**` would hold a RegExp
 * for minutes on a long path) — with picomatch's meaning (`dot: true`)
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
  // one RegExp for the patterns that cannot backtrack badly; the others segment by segment
  const safe: string[] = [];
  const compiled: Compiled[] = [];
  for (const p of all) {
    const alts = expandBraces(p);
    if (alts.every(backtracksLittle)) safe.push(globSource(p));
    else compiled.push(...alts.map(compileSegments));
  }
  const re = safe.length ? new RegExp(`^(?:${safe.join("|")})$`) : null;
  // as picomatch: a path equal to a pattern matches it (`src/[a].js` names that file too)
  const same = new Set(all);
  return (rel) => {
    if (same.has(rel) || (re !== null && re.test(rel))) return true;
    if (compiled.length === 0) return false;
    const parts = rel.split("/");
    return compiled.some((c) => matchSegments(c, parts));
  };
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

/**
 * True when the RegExp of brace-free pattern `p` ({@link globSource}) backtracks at most
 * quadratically on a path that misses: one `**` at most besides a trailing one (what
 * normalizeGlob adds), and at most one run of `*` in each other segment. `**\/**\/**\/x` or
 * `*a*a*a*b` backtrack for seconds to minutes on a long name; those go through
 * {@link matchSegments}, which never does. (Paths are what the project holds: untrusted.)
 */
function backtracksLittle(p: string): boolean {
  const segs = p.replace(/\\./g, "x").split("/");
  if (segs.length > 1 && segs[segs.length - 1] === "**") segs.pop();
  let globstars = 0;
  for (const seg of segs) {
    if (seg === "**") globstars++;
    else if ((seg.match(/\*+/g)?.length ?? 0) > 1) return false;
  }
  return globstars <= 1;
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
      out += classSource(p, i, end);
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

/** At most this many patterns come out of one glob's `{a,b}` alternatives (more: literal). */
const MAX_EXPANSIONS = 1024;

/**
 * The brace-free patterns `p` stands for: each `{a,b}` (nested, with a comma at its own depth)
 * replaced by each alternative in turn; a brace without a comma, or unclosed, stays literal (as
 * `\{`). Beyond {@link MAX_EXPANSIONS} the pattern is taken literally (it still names itself).
 */
function expandBraces(p: string): string[] {
  let out = [""];
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\" && i + 1 < p.length) {
      out = out.map((o) => o + c + p[++i]);
    } else if (c === "{" && braceHasComma(p, i)) {
      const end = braceClose(p, i);
      const alts = splitAlternatives(p.slice(i + 1, end)).flatMap(expandBraces);
      const next: string[] = [];
      for (const o of out) for (const a of alts) next.push(o + a);
      if (next.length > MAX_EXPANSIONS) return [escapeAll(p)];
      out = next;
      i = end;
    } else if (c === "{" || c === "}") {
      out = out.map((o) => `${o}\\${c}`);
    } else {
      out = out.map((o) => o + c);
    }
  }
  return out;
}

/** `p` with every character escaped (matched literally). */
function escapeAll(p: string): string {
  return [...p].map((c) => (c === "/" ? c : `\\${c}`)).join("");
}

/** The index of the `}` closing the brace opened at `i` (it is closed: see braceHasComma). */
function braceClose(p: string, i: number): number {
  let depth = 0;
  for (let j = i; j < p.length; j++) {
    if (p[j] === "\\") j++;
    else if (p[j] === "{") depth++;
    else if (p[j] === "}" && --depth === 0) return j;
  }
  return p.length;
}

/** The alternatives of a brace's inside, split at the commas of its own depth. */
function splitAlternatives(inner: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let j = 0; j < inner.length; j++) {
    const c = inner[j];
    if (c === "\\") j++;
    else if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === "," && depth === 0) (out.push(inner.slice(from, j)), from = j + 1);
  }
  out.push(inner.slice(from));
  return out;
}

/** One token of a path segment's pattern. */
type Token =
  | { kind: "char"; c: string }
  | { kind: "any" }
  | { kind: "class"; re: RegExp }
  | { kind: "star" };

/** The `**` segment (not a string: a plain name `\*\*` is one). */
const GLOBSTAR: unique symbol = Symbol("**");

/** A segment of a pattern: `**`, a plain name (compared as a string), or wildcard tokens. */
type Seg = typeof GLOBSTAR | string | Token[];

/** A brace-free pattern's segments: `**` (any number of path segments) or a segment's tokens. */
interface Compiled {
  segs: Seg[];
  /** A trailing `**` after a segment ending in `*` (`a*\/**`) needs one segment at least. */
  trailingNeedsOne: boolean;
}

/**
 * Splits a brace-free pattern into segments at its unescaped `/`: a `**` segment crosses any
 * number of directories; elsewhere `*` (a run of them) is any run of characters but `/` — a
 * segment that is only a star needs one at least — `?` one character, `[...]` a class (`[^...]`
 * negated, never `/`), `\\c` the character c, an unclosed `[` literal.
 */
function compileSegments(p: string): Compiled {
  const segs: Seg[] = [];
  let cur: Token[] = [];
  let raw = "";
  const endSegment = () => {
    const plain = cur.every((t) => t.kind === "char");
    segs.push(
      raw === "**" ? GLOBSTAR : plain ? cur.map((t) => (t as { c: string }).c).join("") : cur,
    );
    cur = [];
    raw = "";
  };
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "/") {
      endSegment();
      continue;
    }
    raw += c;
    if (c === "\\" && i + 1 < p.length) {
      const e = p[++i];
      raw += e;
      cur.push({ kind: "char", c: e });
    } else if (c === "*") {
      if (cur[cur.length - 1]?.kind !== "star") cur.push({ kind: "star" });
    } else if (c === "?") {
      cur.push({ kind: "any" });
    } else if (c === "[" && classEnd(p, i) > 0) {
      const end = classEnd(p, i);
      raw += p.slice(i + 1, end + 1);
      cur.push({ kind: "class", re: classRegExp(p, i, end) });
      i = end;
    } else {
      cur.push({ kind: "char", c });
    }
  }
  endSegment();
  const last = segs.length - 1;
  const before = last > 0 ? segs[last - 1] : null;
  const trailingNeedsOne = segs[last] === GLOBSTAR && before !== null && Array.isArray(before) &&
    before[before.length - 1]?.kind === "star";
  return { segs, trailingNeedsOne };
}

/** The one-character RegExp of the class `p[i..end]` (never matching `/`). */
function classRegExp(p: string, i: number, end: number): RegExp {
  return new RegExp(`^${classSource(p, i, end)}$`);
}

/** The RegExp source of the class `p[i..end]`: one character, never `/`. */
function classSource(p: string, i: number, end: number): string {
  let k = i + 1;
  let cls = "";
  if (p[k] === "!" || p[k] === "^") (cls = "^", k++);
  for (; k < end; k++) {
    let ch = p[k];
    const escaped = ch === "\\" && k + 1 < end;
    if (escaped) ch = p[++k];
    cls += /[\\\]^[]/.test(ch) || (escaped && ch === "-") ? `\\${ch}` : ch;
  }
  return `(?!/)[${cls}]`;
}

/**
 * Whether `name` (one path segment) matches `tokens`: the usual wildcard walk that, on a
 * mismatch, resumes after the last star with one more character in it — O(len × tokens), never
 * exponential (a RegExp of several stars backtracks for seconds on a long name that misses).
 */
function matchSegment(seg: string | Token[], name: string): boolean {
  if (typeof seg === "string") return seg === name;
  const tokens = seg;
  if (tokens.length === 1 && tokens[0].kind === "star") return name.length > 0;
  let t = 0;
  let n = 0;
  let starT = -1;
  let starN = 0;
  while (n < name.length) {
    const tok = tokens[t];
    if (tok && tok.kind === "star") {
      starT = t++;
      starN = n;
    } else if (tok && oneChar(tok, name[n])) {
      t++;
      n++;
    } else if (starT >= 0) {
      t = starT + 1;
      n = ++starN;
    } else return false;
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

function oneChar(tok: Token, c: string): boolean {
  return tok.kind === "any" ||
    (tok.kind === "char" ? tok.c === c : tok.kind === "class" && tok.re.test(c));
}

/**
 * Whether path segments `parts` match `c`. Without `**`: segment by segment. With one `**` (the
 * usual `src/**`, `**\/*.js`, `a/**\/b`): the segments before it match the path's first ones,
 * those after it its last ones, and it takes what is between. With more: memoised over pattern ×
 * path positions, O(segments × parts) however many there are (a RegExp with several `.*`
 * backtracks for minutes on a long path that misses).
 */
function matchSegments(c: Compiled, parts: string[]): boolean {
  return matchPrefix(c.segs, c.trailingNeedsOne, parts, parts.length);
}

/** {@link matchSegments} of `segs` against the first `N` of `parts`. */
function matchPrefix(segs: Seg[], needOne: boolean, parts: string[], N: number): boolean {
  const first = segs.indexOf(GLOBSTAR);
  if (first < 0) {
    if (segs.length !== N) return false;
    for (let i = 0; i < N; i++) {
      if (!matchSegment(segs[i] as string | Token[], parts[i])) return false;
    }
    return true;
  }
  const last = segs.lastIndexOf(GLOBSTAR);
  if (last === segs.length - 1 && first !== last) {
    // `X/**` with another `**` in X (`**\/*.js/**`, what normalizeGlob adds): X matches a prefix
    const core = segs.slice(0, last);
    for (let k = N - (needOne ? 1 : 0); k >= 0; k--) {
      if (matchPrefix(core, false, parts, k)) return true;
    }
    return false;
  }
  const after = segs.length - 1 - last;
  if (first + after > N) return false;
  for (let i = 0; i < first; i++) {
    if (!matchSegment(segs[i] as string | Token[], parts[i])) return false;
  }
  for (let i = 1; i <= after; i++) {
    if (!matchSegment(segs[segs.length - i] as string | Token[], parts[N - i])) return false;
  }
  const between = N - first - after;
  if (first === last) return between >= (needOne ? 1 : 0);
  // several in the middle (`a/**\/b/**\/c`): memoised over the segments and parts between
  const mid = segs.slice(first, last + 1);
  const from = first;
  const M = between;
  const memo = new Uint8Array((mid.length + 1) * (M + 1)); // 0 ?, 1 no, 2 yes
  const go = (i: number, j: number): boolean => {
    const k = i * (M + 1) + j;
    if (memo[k]) return memo[k] === 2;
    let r: boolean;
    if (i === mid.length) r = j === M;
    else if (mid[i] === GLOBSTAR) r = go(i + 1, j) || (j < M && go(i, j + 1));
    else {
      r = j < M && matchSegment(mid[i] as string | Token[], parts[from + j]) && go(i + 1, j + 1);
    }
    memo[k] = r ? 2 : 1;
    return r;
  };
  return go(0, 0);
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
