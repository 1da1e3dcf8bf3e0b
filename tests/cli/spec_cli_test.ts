/**
 * The real `hd` CLI on real project directories: init (and refusing to overwrite), lock
 * (determinism, what changed), status, dag show, dag diff, and broken hd.toml files (exit 1,
 * file:line:col, nothing written).
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, tempDir } from "../_helpers.ts";

function copyExample(dest: string): void {
  for (const e of Deno.readDirSync(`${REPO}/examples/hello`)) {
    if (e.name === ".hd" || e.name === "node_modules" || e.name === "dist") continue;
    const r = new Deno.Command("cp", { args: ["-r", `${REPO}/examples/hello/${e.name}`, dest] })
      .outputSync();
    assert(r.success);
  }
}

Deno.test("hd init writes a valid starter and refuses to overwrite it (exit 1)", async () => {
  using d = tempDir("hd-cli-");
  const store = `${d.path}/store`;
  const proj = `${d.path}/My Project`;
  Deno.mkdirSync(proj);
  Deno.writeTextFileSync(`${proj}/package.json`, "{}\n");
  const r = await hd(["init", "--json"], { store, cwd: proj });
  assertEquals(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assertEquals(out.name, "my-project");
  const text = Deno.readTextFileSync(`${proj}/hd.toml`);
  assertIncludes(text, 'name = "my-project"');
  assertIncludes(text, '  { run = "npm ci"'); // package.json present: the npm ci step is live
  // the starter is valid: status works on it
  const st = await hd(["status", "--json"], { store, cwd: proj });
  assertEquals(st.code, 0, st.stderr);
  assertEquals(JSON.parse(st.stdout).name, "my-project");
  // a second init refuses and leaves the file alone
  Deno.writeTextFileSync(`${proj}/hd.toml`, text + "# mine\n");
  const again = await hd(["init"], { store, cwd: proj });
  assertEquals(again.code, 1);
  assertIncludes(again.stderr, "already exists");
  assertEquals(Deno.readTextFileSync(`${proj}/hd.toml`), text + "# mine\n");
  // init DIR creates the directory
  const sub = await hd(["init", `${d.path}/new/app`], { store });
  assertEquals(sub.code, 0, sub.stderr);
  assertIncludes(Deno.readTextFileSync(`${d.path}/new/app/hd.toml`), 'name = "app"');
});

Deno.test("hd lock, status, dag show and dag diff on the example project", async () => {
  using d = tempDir("hd-cli-");
  const store = `${d.path}/store`;
  const proj = `${d.path}/hello`;
  Deno.mkdirSync(proj);
  copyExample(proj);
  Deno.removeSync(`${proj}/hd.lock`);

  const l1 = await hd(["lock"], { store, cwd: `${proj}/src` }); // found by walking up
  assertEquals(l1.code, 0, l1.stderr);
  assertIncludes(l1.stdout, "+ npm node_modules/greet 1.0.0");
  assertIncludes(l1.stdout, "wrote");
  const first = Deno.readFileSync(`${proj}/hd.lock`);
  const l2 = await hd(["lock", "--json"], { store, cwd: proj });
  assertEquals(l2.code, 0, l2.stderr);
  const j2 = JSON.parse(l2.stdout);
  assertEquals(j2.written, false);
  assertEquals(j2.changes, []);
  assertEquals(Deno.readFileSync(`${proj}/hd.lock`), first);
  assertEquals(
    new TextDecoder().decode(first),
    Deno.readTextFileSync(`${REPO}/examples/hello/hd.lock`),
  );

  assertEquals((await hd(["lock", "--check"], { store, cwd: proj })).code, 0);
  // a changed npm lockfile: --check fails and writes nothing; lock prints the change
  const pl = JSON.parse(Deno.readTextFileSync(`${proj}/package-lock.json`));
  pl.packages["vendor/greet"].version = "1.1.0";
  const plBefore = Deno.readTextFileSync(`${proj}/package-lock.json`);
  Deno.writeTextFileSync(`${proj}/package-lock.json`, JSON.stringify(pl, null, 2) + "\n");
  const check = await hd(["lock", "--check"], { store, cwd: proj });
  assertEquals(check.code, 1);
  assertIncludes(check.stderr, "hd.lock: it is out of date");
  assertEquals(Deno.readFileSync(`${proj}/hd.lock`), first);
  const l3 = await hd(["lock"], { store, cwd: proj });
  assertIncludes(l3.stdout, "~ npm node_modules/greet 1.0.0 -> 1.1.0");
  assertIncludes(l3.stdout, "~ input package-lock.json");
  Deno.writeTextFileSync(`${proj}/package-lock.json`, plBefore);
  assertEquals((await hd(["lock"], { store, cwd: proj })).code, 0);
  assertEquals(Deno.readFileSync(`${proj}/hd.lock`), first);

  const s1 = await hd(["status", "--json"], { store, cwd: proj });
  assertEquals(s1.code, 0, s1.stderr);
  const st = JSON.parse(s1.stdout);
  assertEquals(st.name, "hello");
  assertEquals(st.lock, "current");
  assertEquals(st.packages, 1);
  assertEquals(st.steps.length, 2);
  assertEquals(st.steps.map((x: { cached: boolean }) => x.cached), [false, false]);
  assertEquals(st.env.recorded, null);
  assert(st.tree.files >= 10, `${st.tree.files} files`);

  const show = await hd(["dag", "show", "--json"], { store, cwd: proj });
  assertEquals(show.code, 0, show.stderr);
  const tree = JSON.parse(show.stdout);
  assertEquals(tree.kind, "env");
  assertEquals(tree.id, st.env.id);
  assertEquals(
    tree.children.map((c: { kind: string }) => c.kind),
    ["dir", "package", "step", "step"],
  );
  const human = await hd(["dag", "show", "--depth", "1"], { store, cwd: proj });
  assertEquals(human.code, 0, human.stderr);
  const lines = human.stdout.trimEnd().split("\n");
  assertEquals(lines[0].split("  ").slice(0, 2), ["env hello", st.env.id.slice(0, 12)]);
  assertEquals(lines.length, 5);
  assert(lines[1].startsWith("├─ files  " + st.tree.root.slice(0, 12)), lines[1]);

  // status now sees the recorded env; a src/ edit keeps npm ci and changes the chained step
  Deno.writeTextFileSync(`${proj}/src/message.js`, 'module.exports = { message: "changed" };\n');
  const s2 = JSON.parse((await hd(["status", "--json"], { store, cwd: proj })).stdout);
  assertEquals(s2.env.recorded, st.env.id);
  assertEquals(s2.env.upToDate, false);
  assertEquals(s2.steps[0].hash, st.steps[0].hash);
  assert(s2.steps[1].hash !== st.steps[1].hash);
  const humanStatus = await hd(["status"], { store, cwd: proj });
  assertIncludes(humanStatus.stdout, "environment hello");
  assertIncludes(humanStatus.stdout, st.steps[0].hash.slice(0, 12));

  // dag diff between the recorded env and the new tree
  const show2 = JSON.parse((await hd(["dag", "show", "--json"], { store, cwd: proj })).stdout);
  const diff = await hd(["dag", "diff", st.env.id, show2.id, "--json"], { store, cwd: proj });
  assertEquals(diff.code, 0, diff.stderr);
  const dj = JSON.parse(diff.stdout);
  assertEquals(dj.changed, ["src/message.js"]);
  assertEquals(dj.added, []);
  assertEquals(dj.steps.map((x: { index: number }) => x.index), [1]);
  const diffHuman = await hd(["dag", "diff", st.tree.root, "trees/hello"], { store, cwd: proj });
  assertIncludes(diffHuman.stdout, "~ src/message.js");
  const bad = await hd(["dag", "diff", st.steps[0].hash, st.tree.root], { store });
  assertEquals(bad.code, 1);
  assertIncludes(bad.stderr, "it is a buildstep node");
});

Deno.test("broken hd.toml: exit 1, file:line:col and key on stderr, nothing written", async () => {
  using d = tempDir("hd-cli-");
  const store = `${d.path}/store`;
  const proj = `${d.path}/p`;
  Deno.mkdirSync(proj);
  const text = `[environment]
name = "p"

[services.web]
command = "node server.js"
port = 3000
depends_on = ["api"]

[services.api]
command = "node api.js"
dependson = ["web"]
`;
  Deno.writeTextFileSync(`${proj}/hd.toml`, text);
  for (const cmd of [["lock"], ["status"], ["dag", "show"]]) {
    const r = await hd(cmd, { store, cwd: proj });
    assertEquals(r.code, 1, `${cmd.join(" ")}: ${r.stderr}`);
    assertIncludes(
      r.stderr,
      'error: Cannot load hd.toml: hd.toml:11:1: unknown key "dependson" in [services.api] (key services.api.dependson)',
    );
    assertIncludes(r.stderr, 'hint: did you mean "depends_on"?');
  }
  Deno.writeTextFileSync(`${proj}/hd.toml`, text.replace("dependson", "depends_on"));
  const cyc = await hd(["lock", "--json"], { store, cwd: proj });
  assertEquals(cyc.code, 1);
  const err = JSON.parse(cyc.stdout);
  assertEquals(
    err.error,
    "Cannot load hd.toml: hd.toml:7:14: depends_on forms a cycle: web -> api -> web (key services.web.depends_on)",
  );
  assertEquals([...Deno.readDirSync(proj)].map((e) => e.name), ["hd.toml"]);
  let storeMade = true;
  try {
    Deno.statSync(`${store}/refs`);
  } catch {
    storeMade = false;
  }
  assert(!storeMade, "no store refs were written");
  // a pip dependency: a clear provider error
  Deno.writeTextFileSync(
    `${proj}/hd.toml`,
    '[environment]\nname = "p"\n[dependencies]\npip = ["requests"]\n',
  );
  const pip = await hd(["lock"], { store, cwd: proj });
  assertEquals(pip.code, 1);
  assertIncludes(
    pip.stderr,
    'Cannot resolve dependency "pip" (hd.toml:4:1): the pip provider is not available yet',
  );
  // no hd.toml anywhere up the tree
  const none = await hd(["status"], { store, cwd: d.path });
  assertEquals(none.code, 1);
  assertIncludes(none.stderr, "Cannot find hd.toml");
  // --file points elsewhere
  Deno.writeTextFileSync(`${d.path}/other.toml`, '[environment]\nname = "other"\n');
  const f = await hd(["lock", "--file", `${d.path}/other.toml`, "--json"], { store, cwd: d.path });
  assertEquals(f.code, 0, f.stderr);
  assertEquals(JSON.parse(f.stdout).packages, 0);
});
