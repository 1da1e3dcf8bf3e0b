/**
 * Table tests of hd ingest's pure parts: the Dockerfile tokenizer, BuildKit's word expansion, the
 * shell quoter (checked against a real `sh`), the package-manager rules, compose interpolation and
 * the TOML writer of the planned keys (docs/design/compose.md) while their features are off.
 * @module
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { DockerfileError, tokenizeDockerfile } from "../../src/ingest/dockerfile.ts";
import { expandWord, shellQuote, splitWords, WordError } from "../../src/ingest/words.ts";
import { classifyRun } from "../../src/ingest/rules.ts";
import { composeWords, interpolate, parseDotEnv } from "../../src/ingest/compose.ts";
import { translateDockerfile } from "../../src/ingest/from_dockerfile.ts";
import {
  allFeatures,
  currentFeatures,
  emptyDoc,
  FEATURES,
  newService,
  renderToml,
  Translation,
} from "../../src/ingest/model.ts";
import { parse as parseToml } from "smol-toml";
import { parseSpec } from "../../src/config/parse.ts";

Deno.test("tokenizer: directives, continuations with comments, forms, heredocs", () => {
  const cases: [string, string, unknown][] = [
    ["shell form", "FROM a\nRUN echo hi\n", { kw: "RUN", args: "echo hi", json: null, line: 2 }],
    ["keyword case", "from a\nrun echo hi\n", { kw: "RUN", args: "echo hi", json: null, line: 2 }],
    ["exec form", 'FROM a\nCMD ["node", "s.js"]\n', {
      kw: "CMD",
      args: '["node", "s.js"]',
      json: ["node", "s.js"],
      line: 2,
    }],
    [
      "continuation with a comment and an empty line inside",
      "FROM a\nRUN a \\\n# not a command\n\n  && b\n",
      { kw: "RUN", args: "a   && b", json: null, line: 2 },
    ],
    [
      "backtick escape directive",
      "# escape=`\nFROM a\nRUN a `\n  b\n",
      { kw: "RUN", args: "a   b", json: null, line: 3 },
    ],
    ["test bracket is shell form", "FROM a\nRUN [ -f x ] && y\n", {
      kw: "RUN",
      args: "[ -f x ] && y",
      json: null,
      line: 2,
    }],
  ];
  for (const [name, text, want] of cases) {
    const t = tokenizeDockerfile(text);
    const i = t.instructions[t.instructions.length - 1];
    assertEquals({ kw: i.keyword, args: i.args, json: i.json, line: i.line }, want, name);
  }
  const t = tokenizeDockerfile(
    "# syntax=docker/dockerfile:1\nFROM a\nRUN <<A cat > /a && <<-'B' cat > /b\none\nA\n\ttwo\n\tB\nRUN --mount=type=cache,target=/c --network=none make\n",
  );
  assertEquals(t.syntax, "docker/dockerfile:1");
  const h = t.instructions[1].heredocs;
  assertEquals(h.map((x) => [x.name, x.body, x.quoted, x.strip]), [
    ["A", "one\n", false, false],
    ["B", "two\n", true, true],
  ]);
  assertEquals(t.instructions[1].endLine, 7);
  assertEquals(t.instructions[2].flags, [
    { name: "mount", value: "type=cache,target=/c" },
    { name: "network", value: "none" },
  ]);
  assertEquals(t.instructions[2].args, "make");
  // a directive after the first instruction is a comment
  assertEquals(tokenizeDockerfile("FROM a\n# escape=`\nRUN a \\\n b\n").escape, "\\");
});

Deno.test("tokenizer: broken inputs name their line", () => {
  const cases: [string, number, RegExp][] = [
    ["FROM a\nRUN <<EOF\nx\n", 2, /unterminated heredoc <<EOF/],
    ["FROM a\nRUNN x\n", 2, /unknown instruction RUNN/],
    ["FROM a\n\nCMD ['a']\n", 3, /double quotes/],
    ["FROM a\nSHELL /bin/bash\n", 2, /SHELL needs the JSON form/],
    ["# escape=x\nFROM a\n", 1, /invalid escape/],
    ["FROM a\nCMD [1, 2]\n", 2, /only strings/],
  ];
  for (const [text, line, re] of cases) {
    const e = assertThrows(() => tokenizeDockerfile(text), re);
    assert(e instanceof DockerfileError);
    assertEquals(e.line, line, text);
  }
});

Deno.test("expansion: BuildKit's forms, quotes and escapes", () => {
  const v = { A: "alpha", E: "", P: "/usr/local/bin:/usr/bin", V: "1.2.3", F: "a/b/c.tar.gz" };
  const cases: [string, string][] = [
    ["$A", "alpha"],
    ["${A}x", "alphax"],
    ["${U:-def}", "def"],
    ["${E:-def}", "def"],
    ["${E-def}", ""],
    ["${U-def}", "def"],
    ["${A:+set}", "set"],
    ["${E:+set}", ""],
    ["${E+set}", "set"],
    ["${U+set}", ""],
    ["${V#*.}", "2.3"],
    ["${V##*.}", "3"],
    ["${V%.*}", "1.2"],
    ["${V%%.*}", "1"],
    ["${F##*/}", "c.tar.gz"],
    ["${F%/*}", "a/b"],
    ["${V/./_}", "1_2.3"],
    ["${V//./_}", "1_2_3"],
    ["/x:$P", "/x:/usr/local/bin:/usr/bin"],
    ["'$A'", "$A"],
    ['"$A b"', "alpha b"],
    ["\\$A", "$A"],
    ["${U:-${A}}", "alpha"],
    ["$", "$"],
    ["a$1", "a$1"],
  ];
  for (const [raw, want] of cases) assertEquals(expandWord(raw, v), want, raw);
  assertEquals(expandWord("`$A", v, "`"), "$A");
  assertThrows(() => expandWord("${U:?must be set}", v), /U: must be set/);
  assert(assertThrows(() => expandWord("${A", v)) instanceof WordError);
  assertThrows(() => expandWord("'open", v), /unterminated single quote/);
  assertEquals(splitWords(`a "b c" 'd e' f\\ g`), [`a`, `"b c"`, `'d e'`, `f\\ g`]);
});

Deno.test("shell quoting: sh gives back the same words", async () => {
  const argvs = [
    ["node", "server.js"],
    ["echo", "it's", "a b", "$HOME", "`x`", "\\", "", "*", "a\nb", '"q"'],
  ];
  for (const argv of argvs) {
    const cmd = `for a in ${shellQuote(argv)}; do printf '%s\\0' "$a"; done`;
    const out = await new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped" }).output();
    const words = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
    assertEquals(words, argv);
  }
  assertEquals(shellQuote(["node", "my app.js"]), "node 'my app.js'");
});

Deno.test("rules: which RUN is keyed by which files", () => {
  const all = () => true;
  const none = () => false;
  const cases: [string, (g: string) => boolean, string[], string[]][] = [
    ["npm ci", none, ["npm"], ["package.json"]],
    ["npm ci --omit=dev", all, ["npm"], [
      "package.json",
      "package-lock.json",
      "npm-shrinkwrap.json",
      ".npmrc",
    ]],
    ["yarn", none, ["yarn"], ["package.json"]],
    ["yarn install --frozen-lockfile", (g) => g === "yarn.lock", ["yarn"], [
      "package.json",
      "yarn.lock",
    ]],
    ["pnpm i", none, ["pnpm"], ["package.json"]],
    ["pip install -r requirements.txt", (g) => g === "requirements*.txt", ["pip"], [
      "requirements*.txt",
    ]],
    ["python -m pip install --no-cache-dir -r req.txt", none, ["pip"], []],
    ["uv sync --frozen", (g) => g === "uv.lock" || g === "pyproject.toml", ["pip"], [
      "pyproject.toml",
      "uv.lock",
    ]],
    ["go mod download", none, ["go"], ["go.mod"]],
    ["cargo fetch", none, ["cargo"], ["Cargo.toml"]],
    ["bundle install", none, ["bundler"], ["Gemfile"]],
    ["composer install --no-dev", none, ["composer"], ["composer.json"]],
    ["mvn -B dependency:go-offline", none, ["maven"], ["pom.xml"]],
    ["./gradlew dependencies --no-daemon", (g) => g === "build.gradle", ["gradle"], [
      "build.gradle",
    ]],
    ["apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*", all, ["apt"], []],
    ["apk add --no-cache git", all, ["apk"], []],
    ["DEBIAN_FRONTEND=noninteractive sudo apt-get install -y x", all, ["apt"], []],
    ["apt-get update && npm ci", none, ["apt", "npm"], ["package.json"]],
  ];
  for (const [cmd, exists, rules, inputs] of cases) {
    const k = classifyRun(cmd, exists);
    assertEquals([k.rules, k.inputs], [rules, inputs], cmd);
  }
  for (
    const cmd of [
      "npm run build",
      "npm ci && npm run build",
      "pip install -e .",
      "go build ./...",
      "make",
      "pip install .",
    ]
  ) {
    const k = classifyRun(cmd, all);
    assertEquals(k.rules, [], cmd);
    assert(k.reason !== null, cmd);
  }
  assertEquals(classifyRun("npm ci", all).outputs, ["node_modules"]);
});

Deno.test("compose: interpolation, .env, command words", () => {
  const v = { A: "x", E: "" };
  const cases: [string, string][] = [
    ["$A", "x"],
    ["${A}", "x"],
    ["$$A", "$A"],
    ["${U:-d}", "d"],
    ["${E:-d}", "d"],
    ["${E-d}", ""],
    ["${A:+r}", "r"],
    ["${U+r}", ""],
    ["${U:-${A}}", "x"],
    ["a${A}b", "axb"],
  ];
  for (const [s, want] of cases) assertEquals(interpolate(s, v), want, s);
  assertThrows(() => interpolate("${U:?need U}", v), /need U/);
  assertThrows(() => interpolate("${U", v), /unterminated/);
  assertEquals(parseDotEnv('# c\nA=1\nexport B=\'two words\'\nC="q\\"x"\nD=v # trailing\n'), {
    A: "1",
    B: "two words",
    C: 'q"x',
    D: "v",
  });
  assertEquals(composeWords(`npm run "dev server" -- --x='$HOME'`), [
    "npm",
    "run",
    "dev server",
    "--",
    "--x=$HOME",
  ]);
});

Deno.test("CMD and ENTRYPOINT combine as Docker does", () => {
  const cases: [string, string | null][] = [
    ['CMD ["node", "s.js"]', "node s.js"],
    ["CMD node s.js", "node s.js"],
    ['ENTRYPOINT ["tini", "--"]\nCMD ["node", "s.js"]', "tini -- node s.js"],
    ['CMD ["node", "s.js"]\nENTRYPOINT ["tini", "--"]', "tini -- node s.js"],
    ['ENTRYPOINT ["python"]\nCMD app.py', "python /bin/sh -c app.py"],
    ['ENTRYPOINT run.sh\nCMD ["ignored"]', "run.sh"],
    ['ENTRYPOINT ["e"]', "e"],
    ['CMD ["echo", "it\'s $HOME"]', `echo 'it'"'"'s $HOME'`],
    ["", null],
  ];
  for (const [lines, want] of cases) {
    const tr = new Translation(currentFeatures());
    const r = translateDockerfile(tr, {
      file: "Dockerfile",
      text: `FROM a\nWORKDIR /app\n${lines}\n`,
    });
    assertEquals(r.service?.command ?? null, want, lines);
  }
  // a stage built FROM another inherits CMD; its own ENTRYPOINT resets it
  const tr = new Translation(currentFeatures());
  const r = translateDockerfile(tr, {
    file: "Dockerfile",
    text: 'FROM a AS b\nWORKDIR /app\nCMD ["x"]\nFROM b\nENTRYPOINT ["e"]\n',
  });
  assertEquals(r.service?.command, "e");
});

Deno.test("planned keys: every feature of the table emits its key when on, reports when off", () => {
  const keys = Object.keys(FEATURES);
  assert(keys.length >= 20);
  // the keys the runtime honours now (docs/hdtoml.md); the rest stay planned
  assertEquals(
    Object.entries(FEATURES).filter(([, f]) => f.on).map(([k]) => k).sort(),
    [
      "build.shell",
      "environment.env_file",
      "environment.user",
      "interpolation",
      "secrets",
      "service.aliases",
      "service.depends_on_conditions",
      "service.env_file",
      "service.expose",
      "service.healthcheck",
      "service.image",
      "service.labels",
      "service.ports",
      "service.profiles",
      "service.restart_grace",
      "service.scale",
      "service.secrets",
      "service.stop_signal",
      "service.tmpfs",
      "service.user",
      "service.volumes",
      "step.copy",
      "step.image",
      "step.user",
      "step.workdir",
      "volumes",
    ],
  );
  for (const features of [currentFeatures(), allFeatures()]) {
    const tr = new Translation(features);
    const doc = emptyDoc("x");
    const sv = newService("web", "node s.js");
    const at = { file: "compose.yaml", line: 7 };
    const emitted = [
      tr.planned("service.ports", sv.extra, "ports", ["8080:3000"], at, "ports"),
      tr.planned(
        "service.healthcheck",
        sv.extra,
        "healthcheck",
        { test: ["CMD", "true"], interval: "5s" },
        at,
        "healthcheck",
      ),
      tr.planned(
        "service.depends_on_conditions",
        sv.extra,
        "depends_on",
        { db: "healthy" },
        at,
        "depends_on",
      ),
      tr.planned("environment.user", doc.environment.extra, "user", "1000:1000", at, "user"),
    ];
    doc.services.push(sv);
    const toml = renderToml(doc);
    const data = parseToml(toml) as Record<string, Record<string, Record<string, unknown>>>;
    const want = [
      features["service.ports"],
      features["service.healthcheck"],
      features["service.depends_on_conditions"],
      features["environment.user"],
    ];
    assertEquals(emitted, want);
    assertEquals(data.services.web.ports, want[0] ? ["8080:3000"] : undefined);
    assertEquals(
      data.services.web.healthcheck,
      want[1] ? { test: ["CMD", "true"], interval: "5s" } : undefined,
    );
    assertEquals(data.services.web.depends_on, want[2] ? { db: "healthy" } : undefined);
    assertEquals(data.environment.user as unknown, want[3] ? "1000:1000" : undefined);
    assertEquals(tr.reports.length, want.filter((w) => !w).length);
    assert(
      tr.reports.every((r) => r.line === 7 && /planned, docs\/design\/compose.md/.test(r.why)),
    );
  }
});

Deno.test("COPY --from: a stage's steps once, by name; nested stages; an image is reported", () => {
  const tr = new Translation(currentFeatures());
  const r = translateDockerfile(tr, {
    file: "Dockerfile",
    text: [
      "FROM alpine:3 AS tools",
      "RUN echo t > /t",
      "FROM golang:1 AS build",
      "ENV CGO_ENABLED=0",
      "WORKDIR /app",
      "COPY --from=tools /t /t",
      "RUN go build -o /out/app .",
      "FROM debian:12",
      "WORKDIR /app",
      "COPY --from=build /out/app /usr/local/bin/app",
      "COPY --from=build /out/ /opt/out/",
      "COPY --from=0 /t /t0",
      "COPY --from=nginx:1 /etc/nginx/nginx.conf /etc/nginx.conf",
      'CMD ["app"]',
    ].join("\n") + "\n",
  });
  const shown: unknown[] = r.steps.map((s) => ({ run: s.extra.copy ? null : s.run, ...s.extra }));
  assertEquals<unknown[]>(shown, [
    { run: "echo t > /t", stage: "tools", image: "alpine:3", workdir: "/" },
    // a stage whose first step is a copy names its image there
    {
      run: null,
      stage: "build",
      image: "golang:1",
      copy: [{ from: "tools", src: "/t", dst: "/t" }],
    },
    { run: "go build -o /out/app .", stage: "build", image: "golang:1" },
    { run: null, copy: [{ from: "build", src: "/out/app", dst: "/usr/local/bin/app" }] },
    { run: null, copy: [{ from: "build", src: "/out", dst: "/opt/out/" }] },
    // an unnamed stage by its index; `tools` was written already
    { run: null, copy: [{ from: "tools", src: "/t", dst: "/t0" }] },
  ]);
  // the stage's ENV goes to each of its steps
  assertEquals(r.steps[2].env, { CGO_ENABLED: "0" });
  assertEquals(
    tr.reports.map((x) => `${x.line}: ${x.what}: ${x.why.slice(0, 41)}`),
    [`13: COPY --from=nginx:1 /etc/nginx/nginx.conf /etc/nginx.conf: not translated: a copy from image nginx:1`],
  );
  // and hd's parser takes it
  const doc = emptyDoc("x");
  doc.environment.base = r.base;
  doc.build.steps = r.steps;
  parseSpec(renderToml(doc), "/p/hd.toml");
});
