/**
 * The one meaning of a project glob (docs/hdtoml.md: relative to the project root, `**` crosses
 * directories, dotfiles match, a pattern naming a directory covers everything below it), and every
 * consumer agreeing with it: [files] (PathFilter), watch (GlobSet), step inputs (stepHashes) and
 * the order of steps (stepDeps).
 */
import { assert, assertEquals } from "../_assert.ts";
// @ts-types="npm:@types/picomatch@4.0.3"
import picomatch from "picomatch";
import {
  cleanGlob,
  globBase,
  globMatcher,
  globSyntaxError,
  normalizeGlob,
} from "../../src/sys/glob.ts";
import { PathFilter } from "../../src/scan/filter.ts";
import { GlobSet } from "../../src/watch/pathmap.ts";
import { stepHashes } from "../../src/env/step_hashes.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { MemDir, Tree } from "../../src/dag/tree.ts";
import { stepDeps } from "../../src/runtime/sandbox_steps.ts";

const PATHS = [
  "package.json",
  "package-lock.json",
  ".env",
  "src",
  "src/a.js",
  "src/abc.js",
  "src/.hidden",
  "src/lib",
  "src/lib/x.js",
  "src/lib/deep/y.ts",
  "docs",
  "docs/guide.md",
  "dist/app.js",
  "srcx/z.js",
];

/** What lies below src/ in PATHS. */
const BELOW_SRC = [
  "src/a.js",
  "src/abc.js",
  "src/.hidden",
  "src/lib",
  "src/lib/x.js",
  "src/lib/deep/y.ts",
];

/** pattern → the paths of PATHS it covers: the one meaning. */
const TABLE: [string, string[]][] = [
  // the project itself: everything
  ["", PATHS],
  [".", PATHS],
  ["./", PATHS],
  ["**", PATHS],
  // a name covers everything below it, however it is written; never a sibling sharing a prefix
  ["src", ["src", ...BELOW_SRC]],
  ["./src/", ["src", ...BELOW_SRC]],
  ["src/**", ["src", ...BELOW_SRC]], // picomatch: `a/**` matches `a` too
  ["src/lib", ["src/lib", "src/lib/x.js", "src/lib/deep/y.ts"]],
  ["package.json", ["package.json"]],
  // a glob covers what it matches and everything below that
  ["src/*", BELOW_SRC],
  ["src/a*.js", ["src/a.js", "src/abc.js"]],
  ["src/**/*.js", ["src/a.js", "src/abc.js", "src/lib/x.js"]],
  ["**/*.js", ["src/a.js", "src/abc.js", "src/lib/x.js", "dist/app.js", "srcx/z.js"]],
  ["*.json", ["package.json", "package-lock.json"]],
  ["package*.json", ["package.json", "package-lock.json"]],
  ["src/{a,abc}.js", ["src/a.js", "src/abc.js"]],
  // dotfiles match
  [".env", [".env"]],
  ["**/.hidden", ["src/.hidden"]],
  ["nothing", []],
];

Deno.test("glob: the table of what a pattern covers", () => {
  for (const [pattern, want] of TABLE) {
    const m = globMatcher([pattern]);
    assertEquals(PATHS.filter((p) => m(p)), want, JSON.stringify(pattern));
  }
  assertEquals(PATHS.filter(globMatcher([])), [], "no pattern covers nothing");
});

Deno.test("glob: cleanGlob, normalizeGlob, globBase", () => {
  const rows: [string, string, string[], string][] = [
    // pattern, clean, normalized, base
    ["", "", ["**"], ""],
    [".", "", ["**"], ""],
    ["./", "", ["**"], ""],
    ["././src//", "src", ["src", "src/**"], "src"],
    ["src", "src", ["src", "src/**"], "src"],
    ["src/lib/x.js", "src/lib/x.js", ["src/lib/x.js", "src/lib/x.js/**"], "src/lib/x.js"],
    ["src/**", "src/**", ["src/**"], "src"],
    ["**", "**", ["**"], ""],
    ["src/a*.js", "src/a*.js", ["src/a*.js", "src/a*.js/**"], "src"],
    ["src/**/*.js", "src/**/*.js", ["src/**/*.js", "src/**/*.js/**"], "src"],
    ["*.json", "*.json", ["*.json", "*.json/**"], ""],
    ["src/{a,b}/c", "src/{a,b}/c", ["src/{a,b}/c", "src/{a,b}/c/**"], "src"],
    ["./src/*.ts", "src/*.ts", ["src/*.ts", "src/*.ts/**"], "src"],
  ];
  for (const [p, clean, norm, base] of rows) {
    assertEquals(cleanGlob(p), clean, `clean ${JSON.stringify(p)}`);
    assertEquals(normalizeGlob(p), norm, `normalize ${JSON.stringify(p)}`);
    assertEquals(globBase(p), base, `base ${JSON.stringify(p)}`);
  }
});

Deno.test("glob: [files], watch and step inputs agree with the table", () => {
  const files = PATHS.filter((p) => p.includes(".")); // the files of PATHS
  const tree = new Tree(new MemDir());
  const enc = new TextEncoder();
  for (const f of files) tree.setFile(f, { type: "file", mode: 0o100644, size: 1, chunks: [] });
  void enc;
  for (const [pattern, want] of TABLE) {
    const wantFiles = want.filter((p) => files.includes(p));
    // [files] include (the default excludes touch none of PATHS)
    const inc = new PathFilter([pattern]);
    assertEquals(files.filter((p) => inc.includesFile(p)), wantFiles, `include ${pattern}`);
    // [files] exclude: the complement
    const exc = new PathFilter([], [pattern]);
    assertEquals(
      files.filter((p) => !exc.includesFile(p)),
      wantFiles,
      `exclude ${JSON.stringify(pattern)}`,
    );
    // watch
    assertEquals(new GlobSet([pattern]).filter(PATHS), want, `watch ${JSON.stringify(pattern)}`);
    // step inputs: the number of files hashed (hd.toml refuses an empty string)
    if (pattern === "") continue;
    const spec = parseSpec(
      `[environment]\nname = "g"\n[build]\nsteps = [{ run = "x", inputs = [${
        JSON.stringify(pattern)
      }] }]\n`,
      "/p/hd.toml",
    );
    const [step] = stepHashes(spec, tree);
    assertEquals(step.inputs[0].files, wantFiles.length, `input ${JSON.stringify(pattern)}`);
  }
});

Deno.test("glob: a step whose input glob matches an earlier step's output runs after it", () => {
  const spec = (inputs: string, outputs: string) =>
    parseSpec(
      `[environment]\nname = "g"\n[build]\nsteps = [\n` +
        `  { run = "gen", inputs = [], outputs = [${outputs}] },\n` +
        `  { run = "use", inputs = [${inputs}] },\n]\n`,
      "/p/hd.toml",
    );
  const rows: [string, string, boolean][] = [
    ['"src/a*.js"', '"src/abc.js"', true], // the static prefix of src/a*.js is src, not src/a
    ['"src/**"', '"src/gen"', true],
    ['"src"', '"src/gen/x.js"', true],
    ['"src/gen/x.js"', '"src/gen"', true],
    ['"./src/*.ts"', '"src/"', true],
    ['"docs/*.md"', '"src/gen"', false],
    ['"srcx/*.js"', '"src"', false],
  ];
  for (const [inputs, outputs, linked] of rows) {
    const deps = stepDeps(spec(inputs, outputs));
    assertEquals(deps[1].has(0), linked, `${inputs} after ${outputs}`);
  }
});

/** picomatch's answer for a project glob: any of its normalized patterns, `dot: true`. */
function picomatchSays(pattern: string): (rel: string) => boolean {
  const ms = normalizeGlob(pattern).map((p) => picomatch(p, { dot: true }));
  return (rel) => ms.some((m) => m(rel));
}

const MORE_PATHS = [
  ...PATHS,
  "a",
  "a/b",
  "a/xb",
  "a/x/y/b",
  "a/b/c",
  "b",
  "b/x",
  "x.log",
  "d/e/x.log",
  ".git/config",
  "a-5",
  "a b",
  "a+b",
  "a.b$",
  "x*y",
  "xay",
  "q]",
  "a^b",
  "src/b.js",
  "src/[a].js",
  "{a}/x",
  "a{b",
  "a[",
  "lib",
  "lib/q",
  "node_modules/.bin/x",
  "ü/é.txt",
];

const MORE_PATTERNS = [
  "a",
  "a/b",
  "a/**/b",
  "a/**",
  "**/b",
  "**/*.log",
  "*",
  "*/x",
  "**/x",
  "a*",
  "*b",
  "a/*b",
  "a/*/b",
  "?",
  "a/?b",
  "[ab]",
  "[a-c]/x",
  "[^a]",
  "a-[0-9]",
  "[]]",
  "q[]]",
  "{a,b}",
  "{a,b}/x",
  "{a,{b,c}}/x",
  "{a}/x",
  "a{b",
  "a[",
  "x\\*y",
  "a\\{b",
  "a b",
  "a+b",
  "a.b$",
  "a^b",
  "src/[a].js",
  "src/\\[a\\].js",
  ".git",
  "**/.bin/*",
  "*.{js,ts}",
  "src/**/*.{js,ts}",
  "ü/*.txt",
];

Deno.test("glob: hd's matcher says what picomatch says on the syntax hd.toml accepts", () => {
  const diffs: string[] = [];
  const check = (pattern: string) => {
    if (globSyntaxError(pattern) !== null) return;
    const mine = globMatcher([pattern]);
    const theirs = picomatchSays(pattern);
    for (const p of MORE_PATHS) {
      if (mine(p) !== theirs(p)) diffs.push(`${JSON.stringify(pattern)} ${p}: hd ${mine(p)}`);
    }
  };
  for (const [pattern] of TABLE) check(pattern);
  for (const pattern of MORE_PATTERNS) {
    assertEquals(globSyntaxError(pattern), null, pattern);
    check(pattern);
  }
  // and on patterns made at random from the characters that mean something (a fixed seed)
  let seed = 42;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const parts = ["a", "b", "x", "/", "*", "**", "?", "[ab]", "[^a]", "{a,b}", ".", "-", "\\*"];
  let tried = 0;
  for (let i = 0; i < 3000; i++) {
    let p = "";
    for (let k = 1 + rnd(5); k > 0; k--) p += parts[rnd(parts.length)];
    p = cleanGlob(p);
    if (p.startsWith("/") || p.includes("//") || p === "") continue;
    tried++;
    check(p);
  }
  assert(tried > 1000, `only ${tried} random patterns`);
  assertEquals(diffs.slice(0, 20), []);
});

Deno.test("glob: syntax picomatch reads another way is refused, with a hint", () => {
  for (
    const p of [
      "!dist",
      "+(a|b)",
      "@(x)",
      "a/!(b)",
      "(a|b)/x",
      "{1..3}",
      "[[:alpha:]]",
      "[!a]*",
      "{a/**,b}",
    ]
  ) {
    const e = globSyntaxError(p);
    assert(e !== null && e.why.length > 0 && e.hint.length > 0, p);
  }
  let err: unknown = null;
  try {
    parseSpec(
      `[environment]\nname = "g"\n[services.w]\ncommand = "x"\nwatch = ["!dist"]\n`,
      "/p/hd.toml",
    );
  } catch (e) {
    err = e;
  }
  assert(err instanceof Error && /negation/.test(err.message), String(err));
});

Deno.test("glob: patterns a RegExp would backtrack on for minutes are answered segment by segment", () => {
  // an hd.toml is untrusted (a cloned repository's): with the one-RegExp matcher, `*a*a…b` on a
  // long name or several `**` on a deep path that misses took from seconds to minutes (hd up hung)
  const stars = globMatcher([`${"*a".repeat(12)}b`]);
  assertEquals(stars("a".repeat(240)), false);
  assertEquals(stars(`${"a".repeat(240)}b`), true);
  assertEquals(stars(`x/${"a".repeat(240)}b`), false, "one segment");
  const deep = globMatcher([`${"**/".repeat(8)}x`]);
  const path = Array(400).fill("ab").join("/");
  assertEquals(deep(`${path}/y`), false);
  assertEquals(deep(`${path}/x`), true);
  assertEquals(deep(`${path}/x/below`), true, "and what lies below a match");
  const mixed = globMatcher(["**/a*/**/b*/**/c*.js"]);
  assertEquals(mixed(`${path}/a1/q/b2/r/c3.js`), true);
  assertEquals(mixed(`${path}/a1/q/b2/r/d3.js`), false);
});
