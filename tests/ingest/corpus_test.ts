/**
 * The ingest corpus: every case under tests/ingest/corpus/<case>/ holds a Dockerfile or a
 * compose.yaml (and the project files its rules look for), the hd.toml it must become
 * (`hd.toml.golden`, loaded by hd's own parser too) and the reports (`reports.golden`, one
 * FILE:LINE: why a line). `options.json` may give `target`, `buildArgs`, `env` and `input`.
 * `planned.golden`, when present, is the same case with every planned key of
 * docs/design/compose.md switched on. Run with HD_UPDATE_GOLDEN=1 to rewrite the goldens.
 *
 * The broken cases under tests/ingest/broken/<case>/ must fail with the message in
 * `error.golden` (FILE:LINE and the hint), through the CLI: exit 1 and nothing written.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, REPO, tempDir } from "../_helpers.ts";
import { ingest, projectFiles } from "../../src/ingest/ingest.ts";
import { allFeatures, formatReport } from "../../src/ingest/model.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { HdError } from "../../src/sys/errors.ts";

const CORPUS = `${REPO}/tests/ingest/corpus`;
const BROKEN = `${REPO}/tests/ingest/broken`;
const UPDATE = !!Deno.env.get("HD_UPDATE_GOLDEN");

function inputOf(dir: string, opts: { input?: string }): string {
  if (opts.input) return opts.input;
  for (const n of ["Dockerfile", "compose.yaml"]) {
    try {
      Deno.statSync(`${dir}/${n}`);
      return n;
    } catch { /* next */ }
  }
  throw new Error(`no input in ${dir}`);
}

function golden(path: string, actual: string): void {
  if (UPDATE) {
    Deno.writeTextFileSync(path, actual);
    return;
  }
  let want = "";
  try {
    want = Deno.readTextFileSync(path);
  } catch {
    throw new Error(`missing ${path} (run with HD_UPDATE_GOLDEN=1 to write it)`);
  }
  assertEquals(actual, want, path);
}

const cases = [...Deno.readDirSync(CORPUS)].filter((e) => e.isDirectory).map((e) => e.name).sort();
assert(cases.length >= 10, "the corpus has its cases");

for (const c of cases) {
  Deno.test(`ingest corpus: ${c}`, () => {
    const dir = `${CORPUS}/${c}`;
    let opts: Record<string, unknown> = {};
    try {
      opts = JSON.parse(Deno.readTextFileSync(`${dir}/options.json`));
    } catch { /* none */ }
    const input = inputOf(dir, opts as { input?: string });
    const base = {
      dir,
      input,
      fs: projectFiles(dir),
      name: c,
      target: (opts.target as string) ?? null,
      buildArgs: (opts.buildArgs as Record<string, string>) ?? {},
      env: (opts.env as Record<string, string>) ?? {},
      arch: "amd64",
    };
    const r = ingest(base);
    golden(`${dir}/hd.toml.golden`, r.toml);
    golden(`${dir}/reports.golden`, r.reports.map(formatReport).join("\n") + "\n");
    // hd itself loads the translation
    const spec = parseSpec(r.toml, `${dir}/hd.toml`);
    assertEquals(spec.environment.name, r.doc.environment.name);
    let planned = false;
    try {
      Deno.statSync(`${dir}/planned.golden`);
      planned = true;
    } catch { /* none */ }
    if (planned) {
      const p = ingest({ ...base, features: allFeatures() });
      golden(
        `${dir}/planned.golden`,
        p.toml + "\n# reports\n" + p.reports.map((x) => `# ${formatReport(x)}`).join("\n") + "\n",
      );
    }
  });
}

const broken = [...Deno.readDirSync(BROKEN)].filter((e) => e.isDirectory).map((e) => e.name).sort();

for (const c of broken) {
  Deno.test(`ingest broken: ${c}`, () => {
    const dir = `${BROKEN}/${c}`;
    const input = inputOf(dir, {});
    let msg = "";
    try {
      ingest({ dir, input, fs: projectFiles(dir), name: c, env: {} });
    } catch (e) {
      assert(e instanceof HdError, `${c}: an HdError, not ${e}`);
      assertEquals(e.exitCode, 1);
      msg = `error: ${e.message}\nhint: ${e.hint}\n`;
    }
    assert(msg !== "", `${c}: ingest must fail`);
    golden(`${dir}/error.golden`, msg);
  });
}

Deno.test("hd ingest CLI: a broken input exits 1, names FILE:LINE and writes nothing", async () => {
  using tmp = tempDir();
  for (const c of broken) {
    const dir = `${tmp.path}/${c}`;
    Deno.mkdirSync(dir);
    for (const e of Deno.readDirSync(`${BROKEN}/${c}`)) {
      if (e.name !== "error.golden") {
        Deno.copyFileSync(`${BROKEN}/${c}/${e.name}`, `${dir}/${e.name}`);
      }
    }
    const r = await hd(["ingest"], { cwd: dir });
    assertEquals(r.code, 1, `${c}: ${r.stderr}`);
    const want = Deno.readTextFileSync(`${BROKEN}/${c}/error.golden`).split("\n")[0];
    assertEquals(r.stderr.split("\n")[0], want, c);
    assert(
      [...Deno.readDirSync(dir)].every((e) => !e.name.startsWith("hd.toml")),
      `${c}: nothing written`,
    );
  }
});

Deno.test("ingest: a compose .env or extends file linked out of the project is not read (nothing of it lands in hd.toml)", () => {
  using d = tempDir("hd-ingest-");
  using outside = tempDir("hd-outside-");
  Deno.writeTextFileSync(`${outside.path}/host.env`, "DB_PASSWORD=host-secret-value\n");
  Deno.writeTextFileSync(
    `${outside.path}/base.yaml`,
    "services:\n  base:\n    image: nginx:1.27\n    environment:\n      - TOKEN=host-secret-value\n",
  );
  const compose = (extra: string) =>
    Deno.writeTextFileSync(
      `${d.path}/compose.yaml`,
      "services:\n  web:\n    image: nginx:1.27\n" + extra +
        "    environment:\n      - PASSWORD=${DB_PASSWORD:-none}\n",
    );
  /** The translation, or the error's message. */
  const run = () => {
    try {
      return ingest({
        dir: d.path,
        input: "compose.yaml",
        fs: projectFiles(d.path),
        name: "l",
        env: {},
      })
        .toml;
    } catch (e) {
      assert(e instanceof HdError, String(e));
      return e.message;
    }
  };
  compose("");
  Deno.writeTextFileSync(`${d.path}/.env`, "DB_PASSWORD=from-the-project\n");
  assert(run().includes("from-the-project"), "a project .env is read");
  Deno.removeSync(`${d.path}/.env`);
  Deno.symlinkSync(`${outside.path}/host.env`, `${d.path}/.env`);
  // not interpolated from it (and hd's own check of the translation refuses it)
  const said = run();
  assert(!said.includes("host-secret-value"), said);
  assert(said.includes(".env leads outside"), said);
  Deno.removeSync(`${d.path}/.env`);
  // a service extending one of a file linked out of the project: as if that file were missing
  compose("    extends: { file: base.yaml, service: base }\n");
  Deno.symlinkSync(`${outside.path}/base.yaml`, `${d.path}/base.yaml`);
  const ext = run();
  assert(!ext.includes("host-secret-value"), ext);
  assert(ext.includes("extends file base.yaml does not exist"), ext);
});
