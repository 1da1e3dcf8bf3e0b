/**
 * Compile to the Env DAG on real project directories and a real store: step invalidation (a src/
 * edit keeps a table step with declared inputs, changes a chained step), the Env node's children,
 * refs, the stat cache, outputs excluded from tracking, globs and directories as inputs.
 */
import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode, putNode } from "../../src/dag/dag.ts";
import { Tree } from "../../src/dag/tree.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { compileEnv } from "../../src/env/compile.ts";
import { stepHashes } from "../../src/env/step_hashes.ts";
import { LOCK_FILE, resolveLock, writeLock } from "../../src/config/lockfile.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { REPO, tempDir } from "../_helpers.ts";

const TOML = `[environment]
name = "demo"
env = { A = "1" }

[dependencies]
npm = { file = "package-lock.json" }

[build]
steps = [
  { run = "npm ci", inputs = ["package.json", "package-lock.json"], outputs = ["node_modules"] },
  "npm run build",
  { run = "lint", inputs = ["src/**/*.js"] },
  { run = "docs", inputs = ["docs"] },
]

[files]
exclude = ["*.log"]
`;

function writeProject(dir: string): void {
  Deno.mkdirSync(`${dir}/src/lib`, { recursive: true });
  Deno.mkdirSync(`${dir}/docs`, { recursive: true });
  Deno.mkdirSync(`${dir}/node_modules/a`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/hd.toml`, TOML);
  Deno.writeTextFileSync(`${dir}/package.json`, '{ "name": "demo" }\n');
  Deno.copyFileSync(
    `${REPO}/tests/config/fixtures/npm-v3/package-lock.json`,
    `${dir}/package-lock.json`,
  );
  Deno.writeTextFileSync(`${dir}/src/index.js`, "console.log(1);\n");
  Deno.writeTextFileSync(`${dir}/src/lib/util.js`, "module.exports = 1;\n");
  Deno.writeTextFileSync(`${dir}/src/notes.txt`, "notes\n");
  Deno.writeTextFileSync(`${dir}/docs/readme.md`, "# docs\n");
  Deno.writeTextFileSync(`${dir}/node_modules/a/index.js`, "installed\n");
  Deno.writeTextFileSync(`${dir}/debug.log`, "log\n");
}

Deno.test("compile: Env node, refs, stat cache, outputs and excludes left out", async () => {
  using d = tempDir("hd-compile-");
  using s = tempDir("hd-store-");
  writeProject(d.path);
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const env = await compileEnv(store, spec);
  // tracked: hd.toml, package.json, package-lock.json, src/* (3), docs/readme.md
  assertEquals(env.files, 7);
  assert(env.tree.get("node_modules") === undefined, "a declared output is not tracked");
  assert(env.tree.get("debug.log") === undefined, "[files] exclude applies");
  assert(env.tree.get("src/lib/util.js") !== undefined);
  assertEquals(store.getRef("envs/demo"), env.envId);
  assertEquals(store.getRef("trees/demo"), env.filesRoot);
  const node = getNode(store, env.envId);
  assert(node.type === "env");
  assertEquals(node.name, "demo");
  assertEquals(node.children[0], { role: "files", id: env.filesRoot });
  const raw = JSON.parse(Deno.readTextFileSync(`${d.path}/package-lock.json`)).packages;
  const installed = Object.keys(raw).filter((k) => k.startsWith("node_modules/")).length;
  assertEquals(env.packages.length, installed);
  assertEquals(
    node.children.filter((c) => c.role === "step").map((c) => c.id),
    env.steps.map((x) => x.id),
  );
  for (const c of node.children) assert(store.has(c.id), `${c.role} ${c.id} is stored`);
  for (const st of env.steps) for (const i of st.inputs) assert(store.has(i.id), i.label);
  assertEquals(env.packagesFrom, "resolved");
  assertEquals(env.lock, "missing");
  // the stat cache lives in the project's .hd/ and is not itself tracked
  assert(Deno.statSync(`${d.path}/.hd/statcache.json`).isFile);
  const again = await compileEnv(store, spec);
  assertEquals(again.envId, env.envId);
  assert(env.tree.get(".hd") === undefined);
  // with a current hd.lock, packages come from it and the Env is the same
  writeLock(`${d.path}/${LOCK_FILE}`, await resolveLock(spec));
  const locked = await compileEnv(store, spec, { record: false });
  assertEquals(locked.packagesFrom, "lock");
  assertEquals(locked.lock, "current");
  assertEquals(
    locked.packages.map((p) => p.id).sort(),
    env.packages.map((p) => p.id).sort(),
  );
  assertEquals(store.getRef("envs/demo"), env.envId, "record: false leaves refs alone");
});

Deno.test("editing src/ keeps the npm ci step and changes the chained step", async () => {
  using d = tempDir("hd-compile-");
  using s = tempDir("hd-store-");
  writeProject(d.path);
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const before = await compileEnv(store, spec);
  const [ci, build, lint, docs] = before.steps;
  assertEquals(ci.inputs.map((i) => i.label), ["package.json", "package-lock.json"]);
  assertEquals(build.inputs.map((i) => i.label), ["previous", "files"]);
  assertEquals(lint.inputs.map((i) => [i.label, i.files]), [["previous", 0], ["src/**/*.js", 2]]);
  assertEquals(docs.inputs.map((i) => [i.label, i.files]), [["previous", 0], ["docs", 1]]);

  // 1. On disk, then a full recompile.
  Deno.writeTextFileSync(`${d.path}/src/index.js`, "console.log(2);\n");
  const after = await compileEnv(store, spec);
  assertEquals(after.steps[0].id, ci.id, "npm ci keeps its hash");
  assert(after.steps[1].id !== build.id, "the chained step changes");
  assert(after.steps[2].id !== lint.id, "steps after a changed step change too");
  assert(after.filesRoot !== before.filesRoot);
  assert(after.envId !== before.envId);

  // 2. In memory, as the watcher does: update the Tree and call stepHashes.
  const tree = after.tree;
  tree.setFile("src/notes.txt", ingestBytes(store, new TextEncoder().encode("more notes\n")));
  const mem = stepHashes(spec, tree, { store });
  assertEquals(mem[0].id, ci.id);
  assert(mem[1].id !== after.steps[1].id);
  // without a store the same hashes come out (nothing written)
  const dry = stepHashes(spec, Tree.load(store, tree.commit(store)));
  assertEquals(dry.map((x) => x.id), mem.map((x) => x.id));

  // 2b. The same with a glob input (package*.json): a src/ edit keeps it, a match edit does not.
  const globbed = loadSpec(`${d.path}/hd.toml`);
  globbed.build.steps[0].inputs = ["package*.json"];
  const g1 = stepHashes(globbed, tree, { store });
  assertEquals(g1[0].inputs.map((i) => [i.label, i.files]), [["package*.json", 2]]);
  tree.setFile("src/index.js", ingestBytes(store, new TextEncoder().encode("edited\n")));
  const g2 = stepHashes(globbed, tree, { store });
  assertEquals(g2[0].id, g1[0].id);
  assert(g2[1].id !== g1[1].id);
  tree.setFile("package.json", ingestBytes(store, new TextEncoder().encode("{}\n")));
  assert(stepHashes(globbed, tree, { store })[0].id !== g1[0].id);

  // 3. Editing a declared input changes the table step.
  Deno.writeTextFileSync(`${d.path}/package.json`, '{ "name": "demo", "version": "2.0.0" }\n');
  const changed = await compileEnv(store, spec);
  assert(changed.steps[0].id !== ci.id, "editing package.json invalidates npm ci");
});

Deno.test("step identity: env, base image, missing inputs, file node stored", async () => {
  using d = tempDir("hd-compile-");
  using s = tempDir("hd-store-");
  writeProject(d.path);
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const env = await compileEnv(store, spec, { record: false });
  const ci = env.steps[0];
  assertEquals(ci.node.env, [["A", "1"]]);
  const pkgFile = env.tree.get("package.json");
  assert(pkgFile && !("entries" in pkgFile));
  assertEquals(ci.inputs[0].id, putNode(store, pkgFile as never));

  const withBase = loadSpec(`${d.path}/hd.toml`);
  withBase.environment.base = "debian:12";
  const b = stepHashes(withBase, env.tree, { store });
  assert(b[0].id !== ci.id, "a base image changes every step");
  assertEquals(b[0].inputs.map((i) => i.label), ["base", "package.json", "package-lock.json"]);
  assertEquals(
    new TextDecoder().decode(store.getObject(b[0].inputs[0].id)),
    "hd-base-image 1\ndebian:12\n",
  );

  const envChanged = loadSpec(`${d.path}/hd.toml`);
  envChanged.environment.env.A = "2";
  assert(stepHashes(envChanged, env.tree)[0].id !== ci.id, "env is part of the step");

  const missing = loadSpec(`${d.path}/hd.toml`);
  missing.build.steps[0].inputs = ["nope.json", "src/**/*.rs"];
  const m = stepHashes(missing, env.tree, { store });
  assertEquals(m[0].inputs.map((i) => i.missing), [true, true]);
});

Deno.test("the example project compiles", async () => {
  using s = tempDir("hd-store-");
  using d = tempDir("hd-compile-");
  // copy the example so its .hd/ stat cache does not land in the repository
  for (const e of Deno.readDirSync(`${REPO}/examples/hello`)) {
    if (e.name === ".hd" || e.name === "node_modules") continue;
    new Deno.Command("cp", { args: ["-r", `${REPO}/examples/hello/${e.name}`, d.path] })
      .outputSync();
  }
  const store = Store.open(s.path, { create: true });
  const env = await compileEnv(store, loadSpec(`${d.path}/hd.toml`));
  assertEquals(env.name, "hello");
  assertEquals(env.packages.map((p) => `${p.node.name}@${p.node.version}`), ["greet@1.0.0"]);
  assertEquals(env.lock, "current");
  assertEquals(env.steps.length, 2);
  assert(env.tree.get("server.js") !== undefined);
});

Deno.test("a caller-provided base id (a pulled image) replaces the reference blob", async () => {
  using d = tempDir("hd-compile-");
  using s = tempDir("hd-store-");
  writeProject(d.path);
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    TOML.replace('name = "demo"', 'name = "demo"\nbase = "debian:12"'),
  );
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const byRef = await compileEnv(store, spec, { record: false });
  const image = store.putObject(new TextEncoder().encode("pretend image record"));
  const byImage = await compileEnv(store, spec, { record: false, baseId: image });
  assert(byImage.steps[0].id !== byRef.steps[0].id);
  assertEquals(byImage.baseId, image);
  assertEquals(byImage.steps[0].inputs[0], { label: "base", id: image, files: 0 });
  assertEquals(byImage.envNode.children[1], { role: "base", id: image });
  assertEquals(
    stepHashes(spec, byImage.tree, { baseId: image }).map((x) => x.id),
    byImage.steps.map((x) => x.id),
  );
});

Deno.test("glob inputs: the pruned walk takes exactly the files the pattern covers", () => {
  const enc = new TextEncoder();
  const paths = [
    "package.json",
    "package-lock.json",
    "packages/a/package.json",
    "src/a.js",
    "src/ab/c.js",
    "src/ab/d/e.js",
    "src/b.ts",
    "src/x/a.js",
    "lib/x1",
    "lib/x2/deep/f",
    "lib/y",
  ];
  using d = tempDir();
  const store = Store.open(`${d.path}/store`);
  const tree = new Tree();
  for (const p of paths) tree.setFile(p, ingestBytes(store, enc.encode(p)));
  Deno.writeTextFileSync(`${d.path}/hd.toml`, TOML);
  const spec = loadSpec(`${d.path}/hd.toml`);
  const patterns = ["package*.json", "src/a*", "src/*/*.js", "lib/x?", "*", "src/a?", "*/x*"];
  for (const pat of patterns) {
    spec.build.steps = [{ ...spec.build.steps[0], inputs: [pat], index: 0 }];
    const got = stepHashes(spec, tree)[0].inputs[0];
    // the same pattern through the full walk: `**` in a brace forces it, the meaning is unchanged
    const full = stepHashes(
      {
        ...spec,
        build: {
          ...spec.build,
          steps: [{ ...spec.build.steps[0], inputs: [`{${pat},**/nothing-here}`] }],
        },
      },
      tree,
    )[0].inputs[0];
    assertEquals([pat, got.id, got.files], [pat, full.id, full.files]);
    assert(got.files > 0, pat);
  }
});

/** Every file below `dir` (objects, packs, manifests of a store), as relative paths. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) walk(`${d}/${e.name}`, r);
      else out.push(r);
    }
  };
  walk(dir, "");
  return out.sort();
}

Deno.test("compile with write: false hashes the same ids, stores nothing; a writing compile after it stores all", async () => {
  using d = tempDir("hd-compile-");
  using s = tempDir("hd-store-");
  using s2 = tempDir("hd-store-");
  writeProject(d.path);
  const store = Store.open(s.path, { create: true });
  const spec = loadSpec(`${d.path}/hd.toml`);
  const stored = () =>
    ["objects", "manifests", "packs"].flatMap((k) => filesBelow(`${s.path}/${k}`));
  const before = stored();
  const dry = await compileEnv(store, spec, { write: false });
  assertEquals(stored(), before, "a hash-only compile writes no object or pack");
  assertEquals(store.getRef("envs/demo"), null, "and records no ref");
  // the same ids a writing compile gives (on another store, so the stat caches do not mix)
  const other = Store.open(s2.path, { create: true });
  const written = await compileEnv(other, spec, { noCache: true, record: false });
  assertEquals(dry.filesRoot, written.filesRoot);
  assertEquals(dry.envId, written.envId);
  assertEquals(dry.steps.map((x) => x.id), written.steps.map((x) => x.id));
  // the stat cache the dry compile saved names content this store lacks: a writing compile
  // must read those files again, not take their ids on trust
  const env = await compileEnv(store, spec);
  assertEquals(env.filesRoot, dry.filesRoot);
  assert(store.has(env.filesRoot), "the root is stored");
  for (const p of ["src/index.js", "src/lib/util.js", "docs/readme.md"]) {
    const f = env.tree.get(p);
    assert(f !== undefined && !("entries" in f), p);
    for (const c of (f as { chunks?: string[] }).chunks ?? []) assert(store.has(c), `${p} chunk`);
  }
  // a second hash-only compile with the (now warm) cache still sees an in-place edit
  Deno.writeTextFileSync(`${d.path}/src/index.js`, "console.log(2);\n"); // same size
  const again = await compileEnv(store, spec, { write: false });
  assert(again.filesRoot !== env.filesRoot, "the edit changes the root");
});
