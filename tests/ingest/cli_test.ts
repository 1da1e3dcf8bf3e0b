/**
 * `hd ingest` and `hd init --from` through the CLI: finding the input, writing hd.toml beside it
 * (never over one without --force), --stdout, --json (the document and the reports as data),
 * --target and --build-arg.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, tempDir } from "../_helpers.ts";

function copyCase(name: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  const from = `${REPO}/tests/ingest/corpus/${name}`;
  for (const e of Deno.readDirSync(from)) {
    if (e.isFile && !/golden|options\.json/.test(e.name)) {
      Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  }
}

Deno.test("hd ingest: writes hd.toml beside the input, refuses to overwrite, --force, --stdout", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/app`;
  copyCase("naive-node", dir);
  const r = await hd(["ingest"], { cwd: dir });
  assertEquals(r.code, 0, r.stderr);
  assertIncludes(r.stdout, "wrote hd.toml from Dockerfile (1 build step, 1 service)");
  const first = Deno.readTextFileSync(`${dir}/hd.toml`);
  assertIncludes(first, 'inputs = ["package.json", "package-lock.json"]');
  // hd reads what ingest wrote
  const st = await hd(["status", "--json"], { cwd: dir, store: `${tmp.path}/store` });
  assertEquals(st.code, 0, st.stderr);
  // a second run refuses, and leaves the file as it was
  Deno.writeTextFileSync(`${dir}/hd.toml`, first + "# my edit\n");
  const again = await hd(["ingest", "Dockerfile"], { cwd: dir });
  assertEquals(again.code, 1);
  assertIncludes(again.stderr, "hd.toml already exists");
  assertIncludes(again.stderr, "--force");
  assertIncludes(Deno.readTextFileSync(`${dir}/hd.toml`), "# my edit");
  const forced = await hd(["ingest", "--force"], { cwd: dir });
  assertEquals(forced.code, 0, forced.stderr);
  assertEquals(Deno.readTextFileSync(`${dir}/hd.toml`), first);
  // --stdout prints it and writes nothing; reports go to stderr
  Deno.removeSync(`${dir}/hd.toml`);
  const out = await hd(["ingest", "--stdout", `${dir}/Dockerfile`], { cwd: tmp.path });
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stdout, first);
  assert([...Deno.readDirSync(dir)].every((e) => !e.name.startsWith("hd.toml")));
  assert([...Deno.readDirSync(dir)].every((e) => !e.name.endsWith(".tmp")), "no temp file left");
});

Deno.test("hd ingest --json: the document and the reports as data; --target", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/ms`;
  copyCase("multistage", dir);
  const r = await hd(["ingest", "--json", "--stdout", "--target", "runtime"], { cwd: dir });
  assertEquals(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assertEquals(j.kind, "dockerfile");
  assertEquals(j.file, null);
  assertEquals(j.document.environment.base, "debian:12-slim");
  // COPY --from=builder: the stage's steps and a copy step (docs/ingest.md, stages)
  const steps = j.document.build.steps;
  assertEquals(steps.at(-1).extra.copy, [{
    from: "builder",
    src: "/out/app",
    dst: "/usr/local/bin/app",
  }]);
  assertEquals(
    steps.filter((s: { extra: { stage?: string } }) => s.extra.stage === "builder").length,
    2,
  );
  assertEquals(j.reports.length, 1);
  assertEquals([j.reports[0].file, j.reports[0].line], ["Dockerfile", 1]);
  assertIncludes(j.reports[0].what, "stage builder: its build context at /src");
  const dev = await hd(["ingest", "--json", "--stdout", "--target", "dev"], { cwd: dir });
  assertEquals(JSON.parse(dev.stdout).document.environment.base, "golang:1.22");
  const bad = await hd(["ingest", "--target", "nope"], { cwd: dir });
  assertEquals(bad.code, 1);
  assertIncludes(bad.stderr, 'no stage named "nope"');
});

Deno.test("hd ingest --build-arg, and no input at all", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/args`;
  copyCase("args-expansion", dir);
  const r = await hd([
    "ingest",
    "--stdout",
    "--build-arg",
    "VERSION=9.8.7",
    "--build-arg",
    "TAG=13",
  ], {
    cwd: dir,
  });
  assertEquals(r.code, 0, r.stderr);
  assertIncludes(r.stdout, 'base = "debian:13"');
  assertIncludes(r.stdout, 'MAJOR = "9"');
  const none = await hd(["ingest"], { cwd: tmp.path });
  assertEquals(none.code, 1);
  assertIncludes(none.stderr, "no Dockerfile or compose file here");
});

Deno.test("hd init --from FILE ingests; plain hd init names what it found", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/c`;
  copyCase("compose-image-bind", dir);
  Deno.mkdirSync(`${dir}/web`);
  const init = await hd(["init", "--from", "compose.yaml"], { cwd: dir });
  assertEquals(init.code, 0, init.stderr);
  assertIncludes(Deno.readTextFileSync(`${dir}/hd.toml`), 'base = "node:20"');
  assertIncludes(init.stdout, "compose.yaml:13: container_name my-app");
  Deno.removeSync(`${dir}/hd.toml`);
  const plain = await hd(["init"], { cwd: dir });
  assertEquals(plain.code, 0, plain.stderr);
  assertIncludes(plain.stdout, "this directory has compose.yaml: `hd init --from compose.yaml`");
});
