/**
 * `${VAR}` interpolation, env files (`.env`, `env_file`) as compose reads them, and what they may
 * change: tables of forms and errors, the process environment winning over `.env`, and the step
 * hashes, which service-level variables never enter.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { throwsHd } from "./_util.ts";
import { interpolate, InterpolationError, parseEnvFile } from "../../src/config/interpolate.ts";
import { loadSpec, parseSpec } from "../../src/config/parse.ts";
import { ENV_FILE_MAX } from "../../src/config/env_files.ts";
import { Store } from "../../src/cas/store.ts";
import { compileEnv } from "../../src/env/compile.ts";
import { configChanged } from "../../src/services/plan.ts";

const VARS: Record<string, string> = { A: "a", EMPTY: "", PORT: "5000", NESTED: "${A}" };
const look = (n: string) => VARS[n];

Deno.test("interpolate: compose's forms", () => {
  const table: [string, string][] = [
    ["plain", "plain"],
    ["${A}", "a"],
    ["x${A}y${A}", "xaya"],
    ["${UNSET}", ""],
    ["${UNSET:-d}", "d"],
    ["${EMPTY:-d}", "d"],
    ["${EMPTY-d}", ""],
    ["${UNSET-d}", "d"],
    ["${A:-d}", "a"],
    ["${A:+alt}", "alt"],
    ["${EMPTY:+alt}", ""],
    ["${EMPTY+alt}", "alt"],
    ["${UNSET+alt}", ""],
    ["${UNSET:-${PORT}}", "5000"],
    ["${UNSET:-${ALSO:-deep}}", "deep"],
    ["${UNSET:-a}b}", "ab}"],
    ["$$", "$"],
    ["$${A}", "${A}"],
    ["echo $$HOME", "echo $HOME"],
    // a $ before anything but { and $ is the shell's
    ["echo $HOME $1 $(date) $((1+2))", "echo $HOME $1 $(date) $((1+2))"],
    ["cost: 5$", "cost: 5$"],
    // a value is not interpolated again
    ["${NESTED}", "${A}"],
    ["${A:?needed}", "a"],
    ["${EMPTY?only unset fails}", ""],
  ];
  for (const [s, want] of table) assertEquals(interpolate(s, look), want, s);
});

Deno.test("interpolate: errors say what and where", () => {
  const table: [string, string, number][] = [
    ["x ${UNSET:?set it please}", "required variable UNSET is not set: set it please", 2],
    ["${EMPTY:?}", "required variable EMPTY is empty", 0],
    ["${UNSET?}", "required variable UNSET is not set", 0],
    ["ab ${A", '"${" at offset 3 is not closed', 3],
    ["${}", "a variable name is expected", 0],
    ["${1A}", "a variable name is expected", 0],
    ["${A B}", 'unexpected " " after A', 0],
    ["${A:=x}", 'unexpected ":" after A', 0],
  ];
  for (const [s, want, at] of table) {
    try {
      interpolate(s, look);
      throw new Error(`no error for ${s}`);
    } catch (e) {
      assert(e instanceof InterpolationError, `${s}: ${e}`);
      assert(e.message.includes(want), `${s}: ${e.message}`);
      assertEquals(e.offset, at, s);
    }
  }
});

Deno.test("env files: compose's dotenv format", () => {
  const text = [
    "# comment",
    "",
    "A=1",
    "export B = two ",
    "C=three # a comment",
    "D=four#not-a-comment",
    "E='single ${A} $$ # kept'",
    'F="double ${A} \\"q\\" \\n end"',
    'G="multi',
    'line"',
    "H=${A}${B}",
    "I=${UNSET:-dflt}",
    "J=",
    "FROM_PROC",
    "NOT_IN_PROC",
    "K='x' # trailing comment",
    "L.dotted-key=ok",
    "M=$$literal",
    "\tN=tab",
  ].join("\n");
  const { vars } = parseEnvFile(text, (n) => (n === "FROM_PROC" ? "proc" : undefined));
  assertEquals(vars, {
    A: "1",
    B: "two",
    C: "three",
    D: "four#not-a-comment",
    E: "single ${A} $$ # kept",
    F: 'double 1 "q" \n end',
    G: "multi\nline",
    H: "1two",
    I: "dflt",
    J: "",
    FROM_PROC: "proc",
    K: "x",
    "L.dotted-key": "ok",
    M: "$literal",
    N: "tab",
  });
  const bad: [string, string, number][] = [
    ["A=1\n1X=2", '"1X" is not a variable name', 2],
    ["A='open", "the ' quote is not closed", 1],
    ['A="x" y', "unexpected text after the closing", 1],
    ["A=1\nB=${NOPE:?missing}", "required variable NOPE is not set", 2],
  ];
  for (const [t, want, line] of bad) {
    try {
      parseEnvFile(t, () => undefined);
      throw new Error(`no error for ${t}`);
    } catch (e) {
      assert((e as Error).message.includes(want), `${t}: ${(e as Error).message}`);
      assertEquals((e as { line: number }).line, line, t);
    }
  }
});

Deno.test("hd.toml: ${VAR} from the process env over .env, env_file under env", () => {
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/.env`, "TAG=from-dotenv\nPORT=7000\nONLY_DOT=dot\n");
  Deno.writeTextFileSync(`${dir}/common.env`, "SHARED=c1\nOVER=file\nREF=${ONLY_DOT}\n");
  Deno.mkdirSync(`${dir}/env`);
  Deno.writeTextFileSync(`${dir}/env/web.env`, "# web\nWEB=w\nOVER=web-file\n");
  const toml = `[environment]
name = "app-\${TAG}"
env_file = ["common.env"]
env = { OVER = "table" }

[build]
steps = [{ run = "echo \${PORT:-1}", inputs = [] }]

[services.web]
command = "serve --port \${PORT} \$\$HOME \$X"
port = \${PORT}
env_file = "env/web.env"
env = { A = "\${UNSET:-fallback}" }
`;
  // port = ${PORT} is not a string in TOML: it must be quoted to be interpolated
  const e0 = throwsHd(() => parseSpec(toml, `${dir}/hd.toml`, { env: {} }));
  assert(e0.message.includes("invalid TOML"), e0.message);
  const text = toml.replace("port = ${PORT}\n", "");
  const spec = parseSpec(text, `${dir}/hd.toml`, { env: { TAG: "proc" } });
  assertEquals(spec.environment.name, "app-proc"); // the process wins over .env
  assertEquals(spec.environment.env, { SHARED: "c1", OVER: "table", REF: "dot" });
  assertEquals(spec.build.steps[0].run, "echo 7000");
  assertEquals(spec.services.web.command, "serve --port 7000 $HOME $X");
  assertEquals(spec.services.web.env, { WEB: "w", OVER: "web-file", A: "fallback" });
  // the .env itself is not passed to processes
  assertEquals(spec.services.web.env.ONLY_DOT, undefined);

  const at = (t: string, want: string, where: RegExp) => {
    const e = throwsHd(() => parseSpec(t, `${dir}/hd.toml`, { env: {} }));
    assert(e.message.includes(want), e.message);
    assert(where.test(e.message), `${e.message} !~ ${where}`);
  };
  at(
    `[environment]\nname = "x"\n\n[services.db]\ncommand = "run \${DB_PASSWORD:?set DB_PASSWORD}"\n`,
    "required variable DB_PASSWORD is not set: set DB_PASSWORD",
    /hd\.toml:5:\d+: .*\(key services\.db\.command\)/,
  );
  at(
    `[environment]\nname = "x"\n[build]\nsteps = ["a", { run = "\${oops" }]\n`,
    "is not closed",
    /hd\.toml:4:\d+: .*\(key build\.steps\[1\]\.run\)/,
  );
  at(
    `[environment]\nname = "x"\nenv_file = ["missing.env"]\n`,
    'env_file "missing.env" does not exist',
    /hd\.toml:3:\d+: /,
  );
  at(`[environment]\nname = "x"\nenv_file = ["../up.env"]\n`, "leaves the project", /:3:/);
  Deno.writeTextFileSync(`${dir}/bad.env`, "OK=1\nBAD LINE\n");
  at(`[environment]\nname = "x"\nenv_file = "bad.env"\n`, "bad.env:2:1: ", /not a variable/);
  // required = false lets it be missing
  const opt = parseSpec(
    `[environment]\nname = "x"\nenv_file = [{ path = "nope.env", required = false }]\n`,
    `${dir}/hd.toml`,
    { env: {} },
  );
  assertEquals(opt.environment.env, {});
  // a broken .env is reported with its line
  Deno.writeTextFileSync(`${dir}/.env`, "A=1\nB='unclosed\n");
  at(`[environment]\nname = "x"\n`, ".env:2:3: the ' quote is not closed", /hd\.toml/);
  Deno.removeSync(`${dir}/.env`);

  // env files are project files: a symlink may lead elsewhere in the project, never out of it (a
  // cloned project must not hand a host file's variables to its services), and only a regular
  // file of at most ENV_FILE_MAX bytes is read
  using outside = tempDir("hd-outside-");
  Deno.writeTextFileSync(`${outside.path}/host.env`, "AWS_SECRET=host-secret\n");
  Deno.writeTextFileSync(`${dir}/real.env`, "IN=project\n");
  Deno.symlinkSync("real.env", `${dir}/inside.env`);
  Deno.symlinkSync(`${outside.path}/host.env`, `${dir}/abs.env`);
  Deno.symlinkSync(`../${outside.path.split("/").pop()}/host.env`, `${dir}/up.env`);
  const inside = parseSpec(
    `[environment]\nname = "x"\nenv_file = "inside.env"\n`,
    `${dir}/hd.toml`,
    { env: {} },
  );
  assertEquals(inside.environment.env, { IN: "project" });
  at(`[environment]\nname = "x"\nenv_file = "abs.env"\n`, "abs.env leads outside", /hd\.toml/);
  at(`[environment]\nname = "x"\nenv_file = "up.env"\n`, "up.env leads outside", /hd\.toml/);
  Deno.symlinkSync(`${outside.path}/host.env`, `${dir}/.env`);
  at(`[environment]\nname = "x"\n`, ".env leads outside", /hd\.toml/);
  Deno.removeSync(`${dir}/.env`);
  Deno.writeFileSync(`${dir}/big.env`, new Uint8Array(ENV_FILE_MAX + 1).fill(0x41));
  at(`[environment]\nname = "x"\nenv_file = "big.env"\n`, "big.env is 1048577 bytes", /hd/);
  if (new Deno.Command("mkfifo", { args: [`${dir}/fifo.env`] }).outputSync().success) {
    // refused without waiting for a writer
    at(`[environment]\nname = "x"\nenv_file = "fifo.env"\n`, "fifo.env is not a regular", /hd/);
  }
});

Deno.test("service-level env and env_file never enter a step's hash", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/in.txt`, "input\n");
  Deno.writeTextFileSync(`${dir}/svc1.env`, "S=1\n");
  Deno.writeTextFileSync(`${dir}/svc2.env`, "S=2\n");
  Deno.writeTextFileSync(`${dir}/e1.env`, "E=1\n");
  Deno.writeTextFileSync(`${dir}/e2.env`, "E=2\n");
  const store = Store.open(`${dir}/.store`, { create: true });
  const hashes = async (envFile: string, svcFile: string, svcEnv: string) => {
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "h"\nenv_file = "${envFile}"\n\n` +
        `[build]\nsteps = [{ run = "cat in.txt", inputs = ["in.txt"] }]\n\n` +
        `[services.web]\ncommand = "x"\nenv_file = "${svcFile}"\nenv = { V = "${svcEnv}" }\n`,
    );
    const c = await compileEnv(store, loadSpec(`${dir}/hd.toml`), { record: false });
    return c.steps.map((s) => s.id);
  };
  const a = await hashes("e1.env", "svc1.env", "1");
  assertEquals(await hashes("e1.env", "svc2.env", "1"), a, "service env_file changed the step");
  assertEquals(await hashes("e1.env", "svc1.env", "2"), a, "service env changed the step");
  // [environment] variables reach the steps: they are part of the step's identity
  assert((await hashes("e2.env", "svc1.env", "1"))[0] !== a[0], "environment env_file ignored");
});

Deno.test("an edit of .env or of an env_file reads hd.toml again", () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/a.env`, "A=1\n");
  Deno.mkdirSync(`${tmp.path}/svc`);
  Deno.writeTextFileSync(`${tmp.path}/svc/b.env`, "B=1\n");
  const spec = parseSpec(
    `[environment]\nname = "x"\nenv_file = "a.env"\n[services.w]\ncommand = "x"\n` +
      `env_file = ["./svc/b.env", { path = "opt.env", required = false }]\n`,
    `${tmp.path}/hd.toml`,
    { env: {} },
  );
  assertEquals(spec.configFiles, [".env", "a.env", "svc/b.env", "opt.env"]);
  const table: [string[], boolean][] = [
    [["hd.toml"], true],
    [[".env"], true],
    [["src/x.js", "svc/b.env"], true],
    [["opt.env"], true],
    [["src/x.js"], false],
    [["b.env"], false],
  ];
  for (const [changed, want] of table) {
    assertEquals(configChanged(spec, changed), want, `${changed}`);
  }
});
