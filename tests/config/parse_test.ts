/**
 * hd.toml parsing and validation: every section, defaults, and the error messages (file:line:col,
 * key, suggestions, cycles, types, durations, TOML syntax) on real files.
 */
import { assert, assertEquals } from "../_assert.ts";
import type { HdError } from "../../src/cas/errors.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { findSpecFile, loadSpec, parseSpec, SPEC_MAX_BYTES } from "../../src/config/parse.ts";
import { SourcePositions } from "../../src/config/positions.ts";
import { parseDuration } from "../../src/config/duration.ts";
import { didYouMean } from "../../src/config/suggest.ts";
import { REPO, tempDir } from "../_helpers.ts";
import { parse as parseToml } from "smol-toml";

/** Writes `text` as hd.toml in a temp dir and loads it; returns the thrown HdError. */
function loadError(text: string): { err: HdError; file: string } {
  using d = tempDir("hd-spec-");
  const file = `${d.path}/hd.toml`;
  Deno.writeTextFileSync(file, text);
  const err = throwsHd(() => loadSpec(file));
  return { err, file };
}

/** The 1-based line and column of the first occurrence of `needle` in `text`. */
function where(text: string, needle: string, nth = 0): string {
  let i = -1;
  for (let k = 0; k <= nth; k++) i = text.indexOf(needle, i + 1);
  assert(i >= 0, `${needle} not in text`);
  const before = text.slice(0, i).split("\n");
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

Deno.test("the example project parses into the full spec", () => {
  const spec = loadSpec(`${REPO}/examples/hello/hd.toml`);
  assertEquals(spec.environment.name, "hello");
  assertEquals(spec.dir, `${REPO}/examples/hello`);
  assertEquals(spec.environment.env.API_PORT, "3001");
  assertEquals(spec.dependencies.map((d) => [d.provider, d.form]), [["npm", "file"]]);
  assertEquals(spec.build.steps.length, 2);
  assertEquals(spec.build.steps[0].inputs, ["package.json", "package-lock.json"]);
  assertEquals(spec.build.steps[0].outputs, ["node_modules"]);
  assertEquals(spec.build.steps[1].inputs, null);
  assertEquals(spec.build.cache, ["~/.npm"]);
  assertEquals(Object.keys(spec.services), ["api", "web"]);
  assertEquals(spec.services.web.depends_on, ["api"]);
  assertEquals(spec.services.web.port, 3000);
  assertEquals(spec.services.web.restart_policy, "always");
  assertEquals(spec.services.api.restart_policy, "on_failure");
  assertEquals(spec.files.exclude, ["dist", "**/*.log"]);
  assertEquals(spec.options, { restartGraceMs: 2000, debounceMs: 50 });
  const text = Deno.readTextFileSync(spec.file);
  assertEquals(
    `${spec.services.web.at!.line}:${spec.services.web.at!.column}`,
    where(text, "services.web"),
  );
});

Deno.test("defaults: minimal file", () => {
  const spec = parseSpec('[environment]\nname = "x"\n', "/p/hd.toml");
  assertEquals(spec.dir, "/p");
  assertEquals(spec.environment, { name: "x", base: null, env: {}, workdir: null });
  assertEquals(spec.dependencies, []);
  assertEquals(spec.build, { steps: [], cache: [] });
  assertEquals(spec.services, {});
  assertEquals(spec.files, { include: [], exclude: [] });
  assertEquals(spec.options, { restartGraceMs: 5000, debounceMs: 50 });
});

Deno.test("[options] layers: lazy or materialized (absent by default)", () => {
  const spec = parseSpec('[environment]\nname = "x"\n[options]\nlayers = "lazy"\n', "/p/hd.toml");
  assertEquals(spec.options.layers, "lazy");
  assertEquals(parseSpec('[environment]\nname = "x"\n', "/p/hd.toml").options.layers, undefined);
});

Deno.test("[options] jobs: an integer bound of build steps at once (absent by default)", () => {
  const spec = parseSpec('[environment]\nname = "x"\n[options]\njobs = 3\n', "/p/hd.toml");
  assertEquals(spec.options, { restartGraceMs: 5000, debounceMs: 50, jobs: 3 });
  assertEquals(parseSpec('[environment]\nname = "x"\n', "/p/hd.toml").options.jobs, undefined);
});

Deno.test("dependency forms, step forms and array-of-tables steps", () => {
  const spec = parseSpec(
    `[environment]
name = "x"
base = "debian:12"
[dependencies]
apt = ["curl", "git=2.39"]
node = "20"
npm = { file = "package-lock.json" }
[[build.steps]]
run = "npm ci"
inputs = ["package.json"]
network = "none"
[[build.steps]]
run = "make"
env = { A = "1" }
`,
    "/p/hd.toml",
  );
  assertEquals(spec.dependencies.map(({ at: _, ...d }) => d), [
    { provider: "apt", form: "list", packages: ["curl", "git=2.39"] },
    { provider: "node", form: "version", version: "20" },
    { provider: "npm", form: "file", file: "package-lock.json" },
  ]);
  assertEquals(spec.build.steps[0].network, "none");
  assertEquals(spec.build.steps[1].inputs, null); // a table without inputs chains
  assertEquals(spec.build.steps[1].env, { A: "1" });
  assertEquals(spec.build.steps[1].at?.line, 12);
});

Deno.test("typo in a service key: file:line:col, key and suggestion", () => {
  const text = `[environment]
name = "app"

[services.api]
command = "node api.js"

[services.web]
command = "node server.js"
depnds_on = ["api"]
`;
  const { err, file } = loadError(text);
  assertEquals(
    err.message,
    `Cannot load hd.toml: ${file}:${
      where(text, "depnds_on")
    }: unknown key "depnds_on" in [services.web] (key services.web.depnds_on)`,
  );
  assertMatch(err.hint, /did you mean "depends_on"\?/);
  assertEquals(err.exitCode, 1);
});

Deno.test("typos in sections, options and dotted keys get suggestions", () => {
  const cases: [string, string, string, string][] = [
    ['[environment]\nname = "a"\n[servics.web]\ncommand = "x"\n', "servics", "servics", "services"],
    [
      '[environment]\nname = "a"\n[options]\nrestart_grce = "1s"\n',
      "restart_grce",
      "options.restart_grce",
      "restart_grace",
    ],
    [
      'build.stpes = ["make"]\n[environment]\nname = "a"\n',
      "build.stpes",
      "build.stpes",
      "steps",
    ],
    [
      '[environment]\nname = "a"\n[build]\nsteps = [\n  "make",\n  { run = "x", input = ["a"] },\n]\n',
      "input =",
      "build.steps[1].input",
      "inputs",
    ],
  ];
  for (const [text, at, key, guess] of cases) {
    const { err, file } = loadError(text);
    const pos = where(text, at);
    const want = at.includes(".") ? where(text, at.split(".")[0]) : pos;
    assert(err.message.startsWith(`Cannot load hd.toml: ${file}:${want}: `), err.message);
    assert(err.message.endsWith(`(key ${key})`), err.message);
    assert(err.hint.includes(`did you mean "${guess}"?`), err.hint);
  }
});

Deno.test("depends_on: unknown service with suggestion, self and longer cycles", () => {
  const unknown = `[environment]
name = "a"
[services.db]
command = "db"
[services.web]
command = "web"
depends_on = ["dbb"]
`;
  const u = loadError(unknown);
  assertMatch(
    u.err.message,
    /:7:15: depends_on names unknown service "dbb" \(key services\.web\.depends_on\[0\]\)$/,
  );
  assertMatch(u.err.hint, /did you mean "db"\?/);

  const cycle = `[environment]
name = "a"
[services.web]
command = "web"
depends_on = ["api"]
[services.api]
command = "api"
depends_on = ["web"]
`;
  const c = loadError(cycle);
  assert(c.err.message.includes("depends_on forms a cycle: web -> api -> web"), c.err.message);
  assert(c.err.message.includes(`:${where(cycle, '["api"]')}:`), c.err.message);

  const three = `services.a = { command = "a", depends_on = ["b"] }
services.b = { command = "b", depends_on = ["c"] }
services.c = { command = "c", depends_on = ["a"] }
[environment]
name = "a"
`;
  const t = loadError(three);
  assert(t.err.message.includes("a -> b -> c -> a"), t.err.message);
  assert(t.err.message.includes(`:${where(three, '["b"]')}: `), t.err.message);
  assert(t.err.message.endsWith("(key services.a.depends_on)"), t.err.message);

  const self = loadError(
    '[environment]\nname = "a"\n[services.w]\ncommand = "w"\ndepends_on = ["w"]\n',
  );
  assert(self.err.message.includes("cycle: w -> w"), self.err.message);
});

Deno.test("wrong types and values name the value's position", () => {
  const cases: [string, string, RegExp][] = [
    [
      '[environment]\nname = "a"\n[services.web]\ncommand = "x"\nport = 70000\n',
      "70000",
      /port must be an integer from 1 to 65535, not 70000 \(key services\.web\.port\)$/,
    ],
    [
      '[environment]\nname = "a"\n[services.web]\ncommand = "x"\nport = "3000"\n',
      '"3000"',
      /port must be an integer from 1 to 65535, not "3000"/,
    ],
    [
      '[environment]\nname = "a"\n[services.web]\ncommand = "x"\nport = 1.5\n',
      "1.5",
      /port must be an integer/,
    ],
    [
      '[environment]\nname = "a"\n[options]\nrestart_grace = "5 seconds"\n',
      '"5 seconds"',
      /restart_grace must be a duration like "5s", "500ms" or "1m", not "5 seconds" \(key options\.restart_grace\)$/,
    ],
    [
      '[environment]\nname = "a"\n[options]\ndebounce = 50\n',
      "50",
      /debounce must be a duration .* not an integer/,
    ],
    [
      '[environment]\nname = "a"\n[options]\njobs = 0\n',
      "0",
      /jobs must be an integer from 1 to 1024, not 0 \(key options\.jobs\)$/,
    ],
    [
      '[environment]\nname = "a"\n[options]\njobs = "4"\n',
      '"4"',
      /jobs must be an integer from 1 to 1024, not "4"/,
    ],
    [
      '[environment]\nname = "a"\n[options]\nlayers = "fast"\n',
      '"fast"',
      /layers must be "lazy" or "materialized", not "fast" \(key options\.layers\)$/,
    ],
    [
      '[environment]\nname = "a"\n[options]\njobs = 1.5\n',
      "1.5",
      /jobs must be an integer from 1 to 1024, not 1.5/,
    ],
    [
      '[environment]\nname = "a"\n[services.web]\ncommand = "x"\nrestart_policy = "alway"\n',
      '"alway"',
      /restart_policy must be always, on_failure or never/,
    ],
    [
      '[environment]\nname = "Bad Name"\n',
      '"Bad Name"',
      /name "Bad Name" is not valid \(key environment\.name\)$/,
    ],
    [
      '[environment]\nname = "a"\nenv = { PORT = 3000 }\n',
      "3000",
      /environment variable PORT must be a string, not an integer/,
    ],
    [
      '[environment]\nname = "a"\n[build]\nsteps = ["a", 42]\n',
      "42",
      /step 2 must be a command string or a table, not an integer \(key build\.steps\[1\]\)$/,
    ],
    [
      '[environment]\nname = "a"\n[build]\nsteps = [{ run = "x", network = "nope" }]\n',
      '"nope"',
      /network must be "none" or "host"/,
    ],
    [
      '[environment]\nname = "a"\n[services.web]\nport = 3000\n',
      "[services.web]",
      /service "web" needs a command \(key services\.web\.command\)$/,
    ],
    [
      '[environment]\nname = "a"\n[dependencies]\napt = 3\n',
      "3",
      /apt must be a list of packages, a version string or \{ file = "…" \}, not an integer/,
    ],
    [
      '[environment]\nname = "a"\n[files]\nexclude = "dist"\n',
      '"dist"',
      /exclude must be an array of strings, not a string/,
    ],
  ];
  for (const [text, at, re] of cases) {
    const { err, file } = loadError(text);
    const pos = where(text, at, text.split(at).length > 2 ? 1 : 0);
    assert(
      err.message.startsWith(
        `Cannot load hd.toml: ${file}:${at.startsWith("[") ? where(text, at.slice(1)) : pos}: `,
      ),
      `${err.message} (expected at ${pos})`,
    );
    assertMatch(err.message, re);
    assert(err.hint.length > 0);
  }
  const q = loadError('[environment]\nname = "a"\n[services.web]\ncommand = "x"\nport = "3000"\n');
  assertEquals(q.err.hint, "remove the quotes: port = 3000");
});

Deno.test("missing [environment] and name, TOML syntax errors with their line:column", () => {
  const none = loadError('[services.web]\ncommand = "x"\n');
  assertMatch(none.err.message, /:1:1: missing the \[environment\] table$/);
  const noName = loadError('[environment]\nbase = "debian:12"\n');
  assertMatch(noName.err.message, /:1:2: \[environment\] needs a name \(key environment\.name\)$/);
  const syntax = loadError('[environment]\nname = "a"\nb = [\n  1,\n  x\n]\n');
  assertMatch(syntax.err.message, /hd\.toml:5:3: invalid TOML: /);
  const dup = loadError('[environment]\nname = "a"\nname = "b"\n');
  assertMatch(dup.err.message, /hd\.toml:3:\d+: invalid TOML: /);
});

Deno.test("positions: dotted keys, inline tables, headers, multi-line arrays and strings", () => {
  const text = `# comment
[environment]
name = "x"   # trailing
env.A = "1"
services . "web" . command = """
multi "line"
"""
[services.api]
watch = [
  "a", # c
  'b',
]
inline = { a = { b = 1 }, c = [1, 2] }
[[build.steps]]
run = 'x'
[[build.steps]]
run = "y"
`;
  const p = new SourcePositions(text);
  assertEquals(p.key("environment.name"), { line: 3, column: 1 });
  assertEquals(p.value("environment.name"), { line: 3, column: 8 });
  assertEquals(p.key("environment.env.A"), { line: 4, column: 1 });
  assertEquals(p.key("environment.services.web.command"), { line: 5, column: 1 });
  assertEquals(p.key("services.api"), { line: 8, column: 2 });
  assertEquals(p.value("services.api.watch[1]"), { line: 11, column: 3 });
  assertEquals(p.key("services.api.inline.a.b"), { line: 13, column: 18 });
  assertEquals(p.value("services.api.inline.c[1]"), { line: 13, column: 35 });
  assertEquals(p.value("build.steps[1].run"), { line: 17, column: 7 });
  assertEquals(p.nearest("services.api.nothing.deeper"), { line: 8, column: 2 });
});

Deno.test("positions: every key and value smol-toml parsed has a position", () => {
  const texts = [
    Deno.readTextFileSync(`${REPO}/examples/hello/hd.toml`),
    `a.b."c.d" = 1\n[x]\ny = [ { z = 'q' }, [1, [2, 3]] ]\n[[t]]\nk = \"\"\"\nm\n\"\"\"\n[[t]]\nk = 2024-01-01T00:00:00Z\n`,
  ];
  for (const text of texts) {
    const p = new SourcePositions(text);
    // tables themselves have key positions (headers) but no value positions: walk leaves only
    const leaves = (v: unknown, path: string) => {
      if (v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)) {
        for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k);
      } else if (
        Array.isArray(v) && v.some((x) => x && typeof x === "object" && !Array.isArray(x))
      ) {
        v.forEach((x, i) => leaves(x, `${path}[${i}]`));
      } else {
        assert(p.key(path) !== null || /\]$/.test(path), `no key position for ${path}`);
        assert(p.value(path) !== null, `no value position for ${path}`);
      }
    };
    leaves(parseToml(text), "");
  }
});

Deno.test("CRLF line ends and a byte-order mark keep positions right", () => {
  const crlf = throwsHd(() =>
    parseSpec(
      '[environment]\r\nname = "a"\r\n[services.web]\r\ncommand = "x"\r\nport = 0\r\n',
      "/p/hd.toml",
    )
  );
  assertMatch(crlf.message, /hd\.toml:5:8: port must be an integer/);
  const bom = throwsHd(() =>
    parseSpec('\ufeff[environment]\nname = "a"\nbogus = 1\n', "/p/hd.toml")
  );
  assertMatch(bom.message, /hd\.toml:3:1: unknown key "bogus"/);
});

Deno.test("durations and suggestions", () => {
  assertEquals(parseDuration("5s"), 5000);
  assertEquals(parseDuration("500ms"), 500);
  assertEquals(parseDuration("1m"), 60000);
  assertEquals(parseDuration("1m30s"), 90000);
  assertEquals(parseDuration("1.5s"), 1500);
  assertEquals(parseDuration("5"), null);
  assertEquals(parseDuration("5 s"), null);
  assertEquals(parseDuration("-1s"), null);
  assertEquals(didYouMean("depnds_on", ["command", "depends_on", "port"]), "depends_on");
  assertEquals(didYouMean("zzzzzz", ["command", "port"]), null);
});

Deno.test("findSpecFile walks up from a subdirectory", () => {
  using d = tempDir("hd-spec-");
  Deno.mkdirSync(`${d.path}/a/b/c`, { recursive: true });
  Deno.writeTextFileSync(`${d.path}/a/hd.toml`, '[environment]\nname = "x"\n');
  assertEquals(findSpecFile(`${d.path}/a/b/c`), `${d.path}/a/hd.toml`);
  const err = throwsHd(() => findSpecFile(d.path));
  assertMatch(err.message, /^Cannot find hd\.toml: none in /);
  assertMatch(err.hint, /hd init/);
});

/** Every path key of hd.toml: a bad value is a located error naming the key, with a hint. */
const BAD_PATHS: { what: string; toml: string; needle: string; key: string; why: RegExp }[] = [
  {
    what: "an output that leaves the project",
    toml: '[build]\nsteps = [{ run = "x", outputs = ["../x"] }]\n',
    needle: '"../x"',
    key: "build.steps[0].outputs[0]",
    why: /leaves the project/,
  },
  {
    what: "an output hidden behind a normal component",
    toml: '[build]\nsteps = [{ run = "x", outputs = ["a/../../x"] }]\n',
    needle: '"a/../../x"',
    key: "build.steps[0].outputs[0]",
    why: /leaves the project/,
  },
  {
    what: "an absolute output",
    toml: '[build]\nsteps = [{ run = "x", outputs = ["/etc"] }]\n',
    needle: '"/etc"',
    key: "build.steps[0].outputs[0]",
    why: /absolute/,
  },
  {
    what: "an output naming the whole project",
    toml: '[build]\nsteps = [{ run = "x", outputs = ["./"] }]\n',
    needle: '"./"',
    key: "build.steps[0].outputs[0]",
    why: /names the project itself/,
  },
  {
    what: "an absolute input",
    toml: '[build]\nsteps = [{ run = "x", inputs = ["/etc/passwd"] }]\n',
    needle: '"/etc/passwd"',
    key: "build.steps[0].inputs[0]",
    why: /absolute/,
  },
  {
    what: "an input with ..",
    toml: '[build]\nsteps = [{ run = "x", inputs = ["src/../../y"] }]\n',
    needle: '"src/../../y"',
    key: "build.steps[0].inputs[0]",
    why: /leaves the project/,
  },
  {
    what: "a watch glob with ..",
    toml: '[services.web]\ncommand = "x"\nwatch = ["../**"]\n',
    needle: '"../**"',
    key: "services.web.watch[0]",
    why: /leaves the project/,
  },
  {
    what: "an include glob with a home directory",
    toml: '[files]\ninclude = ["~/.ssh/**"]\n',
    needle: '"~/.ssh/**"',
    key: "files.include[0]",
    why: /home directory/,
  },
  {
    what: "an absolute exclude glob",
    toml: '[files]\nexclude = ["/tmp/**"]\n',
    needle: '"/tmp/**"',
    key: "files.exclude[0]",
    why: /absolute/,
  },
  {
    what: "the whole root as cache",
    toml: '[build]\ncache = ["/"]\n',
    needle: '"/"',
    key: "build.cache[0]",
    why: /whole root/,
  },
  {
    what: "a cache that leaves the home directory",
    toml: '[build]\ncache = ["~/../etc"]\n',
    needle: '"~/../etc"',
    key: "build.cache[0]",
    why: /leaves/,
  },
  {
    what: "another user's home as cache",
    toml: '[build]\ncache = ["~bob/.npm"]\n',
    needle: '"~bob/.npm"',
    key: "build.cache[0]",
    why: /another user/,
  },
  {
    what: "a relative cache that leaves the workdir",
    toml: '[build]\ncache = ["../c"]\n',
    needle: '"../c"',
    key: "build.cache[0]",
    why: /leaves the workdir/,
  },
  {
    what: "a service workdir that leaves the project",
    toml: '[services.web]\ncommand = "x"\nworkdir = "a/../.."\n',
    needle: '"a/../.."',
    key: "services.web.workdir",
    why: /leaves the project/,
  },
  {
    what: "an absolute service workdir",
    toml: '[services.web]\ncommand = "x"\nworkdir = "/srv"\n',
    needle: '"/srv"',
    key: "services.web.workdir",
    why: /absolute/,
  },
  {
    what: "an environment workdir with ..",
    toml: 'workdir = "/app/../../etc"\n',
    needle: '"/app/../../etc"',
    key: "environment.workdir",
    why: /"\.\."/,
  },
  {
    what: "a relative environment workdir that leaves the project",
    toml: 'workdir = "../x"\n',
    needle: '"../x"',
    key: "environment.workdir",
    why: /"\.\."/,
  },
  {
    what: "a dependency file that leaves the project",
    toml: '[dependencies]\nnpm = { file = "../package-lock.json" }\n',
    needle: '"../package-lock.json"',
    key: "dependencies.npm.file",
    why: /leaves the project/,
  },
  {
    what: "a NUL byte in a path",
    toml: '[build]\nsteps = [{ run = "x", outputs = ["a\\u0000b"] }]\n',
    needle: '"a\\u0000b"',
    key: "build.steps[0].outputs[0]",
    why: /control character/,
  },
];

Deno.test("path keys: every bad value is refused with file:line:col, the key and a hint", () => {
  for (const c of BAD_PATHS) {
    // Keys before the first table header belong to [environment].
    const text = `[environment]\nname = "x"\n${c.toml}`;
    const { err, file } = loadError(text);
    const shown = file.replace(/^.*\//, "");
    assert(err.message.includes(`hd.toml:${where(text, c.needle)}:`), `${c.what}: ${err.message}`);
    assert(err.message.includes(`(key ${c.key})`), `${c.what}: ${err.message}`);
    assert(err.message.startsWith("Cannot load hd.toml: "), c.what);
    assertMatch(err.message, c.why);
    assert(err.hint.length > 0, `${c.what}: no hint`);
    assert(!err.message.includes("\n"), `${c.what}: one line`);
    assert(shown === "hd.toml");
  }
});

Deno.test("path keys: good values are kept, and normalized where they are paths", () => {
  const spec = parseSpec(
    `[environment]\nname = "x"\nworkdir = "/app//src/./"\n` +
      `[build]\nsteps = [{ run = "x", inputs = ["src/**", "./a.txt"], outputs = ["./dist/", "a//b"] }]\n` +
      `cache = ["~/.npm", "~", ".cache/x/", "/var/cache//apt/"]\n` +
      `[services.web]\ncommand = "x"\nworkdir = "./web/"\nwatch = ["src/**/*.ts", "..foo/x"]\n` +
      `[files]\ninclude = ["src/**"]\nexclude = ["**/*.log", "dist"]\n`,
    "/p/hd.toml",
  );
  assertEquals(spec.environment.workdir, "/app/src");
  assertEquals(spec.build.steps[0].outputs, ["dist", "a/b"]);
  assertEquals(spec.build.steps[0].inputs, ["src/**", "./a.txt"]);
  assertEquals(spec.build.cache, ["~/.npm", "~", ".cache/x", "/var/cache/apt"]);
  assertEquals(spec.services.web.workdir, "web");
  assertEquals(spec.services.web.watch, ["src/**/*.ts", "..foo/x"]);
  const rel = parseSpec(`[environment]\nname = "x"\nworkdir = "sub/dir"\n`, "/p/hd.toml");
  assertEquals(rel.environment.workdir, "sub/dir");
});

Deno.test("a 20,000-service depends_on chain loads (no stack overflow), and its cycle is found", () => {
  const n = 20_000;
  let text = `[environment]\nname = "x"\n`;
  for (let i = 0; i < n; i++) {
    text += `[services.s${i}]\ncommand = "x"\n${i + 1 < n ? `depends_on = ["s${i + 1}"]\n` : ""}`;
  }
  const spec = parseSpec(text, "/p/hd.toml");
  assertEquals(Object.keys(spec.services).length, n);
  const cyclic = text + `depends_on = ["s0"]\n`;
  const err = throwsHd(() => parseSpec(cyclic, "/p/hd.toml"));
  assertMatch(err.message, /depends_on forms a cycle: s0 -> s1 -> .* -> s19999 -> s0/);
  assertMatch(err.message, /^Cannot load hd\.toml: \/p\/hd\.toml:\d+:\d+: /);
});

Deno.test("deeply nested TOML (inline tables, arrays) is refused with a clear located error", () => {
  for (
    const deep of [
      `x = ${"{a=".repeat(5000)}1${"}".repeat(5000)}`,
      `x = ${"[".repeat(100_000)}1${"]".repeat(100_000)}`,
      `x = ${"[".repeat(200)}${"]".repeat(200)}`,
    ]
  ) {
    const err = throwsHd(() => parseSpec(`[environment]\nname = "x"\n${deep}\n`, "/p/hd.toml"));
    assertMatch(err.message, /^Cannot load hd\.toml: \/p\/hd\.toml:3:\d+: invalid TOML: .*nested/);
    assert(err.hint.length > 0);
  }
});

Deno.test("text the position scanner cannot follow does not hang it", () => {
  for (const text of ["a = [}\n", "a = [}]\n", "a = {]\n", "a = [[}}\n", "[a\n= [}"]) {
    const t0 = performance.now();
    new SourcePositions(text);
    const err = throwsHd(() => parseSpec(text, "/p/hd.toml"));
    assertMatch(err.message, /invalid TOML/);
    assert(performance.now() - t0 < 1000, `${JSON.stringify(text)} took too long`);
  }
});

Deno.test("apt packages without a base: an error at load naming the key, not skipped", () => {
  const text = `[environment]
name = "x"

[dependencies]
npm = { file = "package-lock.json" }
apt = ["curl"]
`;
  const { err, file } = loadError(text);
  assertEquals(
    err.message,
    `Cannot load hd.toml: ${file}:${
      where(text, "apt")
    }: apt packages cannot be installed on the host: [environment] has no base image (key dependencies.apt)`,
  );
  assertMatch(err.hint, /add base = "debian:12"/);
  assertMatch(err.hint, /install curl on this machine yourself/);
  // with a base they are fine
  const spec = parseSpec(
    text.replace('name = "x"', 'name = "x"\nbase = "debian:12"'),
    "/p/hd.toml",
  );
  assertEquals(spec.dependencies.map((d) => d.provider), ["npm", "apt"]);
});

Deno.test("hd.toml is read only as a regular file of bounded size: a FIFO, a device or a huge file is a one-line error", () => {
  using d = tempDir("hd-spec-");
  const file = `${d.path}/hd.toml`;
  const cases: [string, () => void, RegExp][] = [
    ["a link to a device", () => Deno.symlinkSync("/dev/zero", file), /not a regular file/],
    ["too big", () => {
      Deno.writeTextFileSync(file, `# ${"x".repeat(SPEC_MAX_BYTES)}\n[environment]\nname = "b"\n`);
    }, /bytes \(at most 4194304\)/],
    ["missing", () => {}, /no such file/],
  ];
  if (new Deno.Command("mkfifo", { args: [`${d.path}/probe`] }).outputSync().success) {
    Deno.removeSync(`${d.path}/probe`);
    cases.push([
      "a FIFO",
      () => void new Deno.Command("mkfifo", { args: [file] }).outputSync(),
      /not a regular file/,
    ]);
  }
  for (const [what, make, says] of cases) {
    try {
      Deno.removeSync(file);
    } catch { /* none */ }
    make();
    const e = throwsHd(() => loadSpec(file));
    assert(e.message.startsWith("Cannot load hd.toml: "), `${what}: ${e.message}`);
    assertMatch(e.message, says);
  }
});
