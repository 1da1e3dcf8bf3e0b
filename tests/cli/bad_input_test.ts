/**
 * Broken input across commands and files: each fails with one clear `Cannot …` line and a hint,
 * a non-zero exit, and nothing half-written — or, for generated files, is repaired.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { StatCache } from "../../src/scan/statcache.ts";

const lockToml =
  '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n';

Deno.test("a damaged hd.lock: status says what and how; hd lock rewrites it; --check refuses", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.writeTextFileSync(`${d.path}/hd.toml`, lockToml);
  Deno.writeTextFileSync(`${d.path}/package-lock.json`, '{"lockfileVersion":3,"packages":{"":{}}}');
  Deno.writeTextFileSync(`${d.path}/hd.lock`, "{broken");
  const st = await hd(["status"], { store, cwd: d.path });
  assertEquals(st.code, 1);
  assertIncludes(st.stderr, "Cannot read");
  assertIncludes(st.stderr, "hd.lock: not valid JSON");
  assertIncludes(st.stderr, "run `hd lock`");
  const check = await hd(["lock", "--check"], { store, cwd: d.path });
  assertEquals(check.code, 1);
  assertEquals(Deno.readTextFileSync(`${d.path}/hd.lock`), "{broken", "--check writes nothing");
  const fix = await hd(["lock"], { store, cwd: d.path });
  assertEquals(fix.code, 0, fix.stderr);
  assertIncludes(fix.stderr, "writing a new one");
  assertEquals(JSON.parse(Deno.readTextFileSync(`${d.path}/hd.lock`)).environment, "p");
  assertEquals((await hd(["status"], { store, cwd: d.path })).code, 0);
});

Deno.test("a truncated stat cache is ignored: the scan reads everything and is right", () => {
  using d = tempDir();
  Deno.mkdirSync(`${d.path}/t`);
  for (let i = 0; i < 20; i++) Deno.writeTextFileSync(`${d.path}/t/f${i}`, `file ${i}\n`);
  const store = Store.open(`${d.path}/s`);
  const cachePath = `${d.path}/cache.json`;
  const c = StatCache.load(cachePath, store);
  const first = ingestTree(store, `${d.path}/t`, { cache: c });
  c.save(cachePath);
  const full = Deno.readTextFileSync(cachePath);
  Deno.writeTextFileSync(cachePath, full.slice(0, full.length >> 1));
  const again = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(cachePath, store),
  });
  assertEquals(again.cacheHits, 0);
  assertEquals(again.root, first.root);
});

Deno.test("mount commands on the wrong target say so and change nothing", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/dir`);
  Deno.writeTextFileSync(`${d.path}/dir/a`, "a");
  Deno.writeTextFileSync(`${d.path}/file`, "not a directory");
  const root = JSON.parse((await hd(["cas", "add", `${d.path}/dir`, "--json"], { store })).stdout)
    .root;
  const un = await hd(["unmount", `${d.path}/dir`], { store });
  assertEquals(un.code, 1);
  assertIncludes(un.stderr, "Cannot unmount");
  assertIncludes(un.stderr, "nothing hd mounted is there");
  const snap = await hd(["snapshot", `${d.path}/dir`], { store });
  assertEquals(snap.code, 1);
  assertIncludes(snap.stderr, "not mounted");
  const onFile = await hd(["mount", root, `${d.path}/file`], { store });
  assertEquals(onFile.code, 1);
  assertIncludes(onFile.stderr, "Cannot mount on");
  assertIncludes(onFile.stderr, "not a directory");
  assertEquals(Deno.readTextFileSync(`${d.path}/file`), "not a directory");
  assertEquals(Deno.readTextFileSync(`${d.path}/dir/a`), "a");
  for (const r of [un, snap, onFile]) assert(!r.stderr.includes("    at "), "no stack trace");
});
