import { assert, assertEquals } from "../_assert.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import { Store } from "../../src/cas/store.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { StatCache } from "../../src/scan/statcache.ts";
import { hd, tempDir } from "../_helpers.ts";

/** A project of a few directories, mtimes in the past (so the cache trusts them). */
function project(dir: string): void {
  const past = new Date(Date.now() - 3600_000);
  for (const sub of ["a", "b", "a/deep"]) Deno.mkdirSync(`${dir}/${sub}`, { recursive: true });
  for (let i = 0; i < 30; i++) {
    const p = `${dir}/${["a", "b", "a/deep"][i % 3]}/f${i}.txt`;
    Deno.writeTextFileSync(p, `content ${i}\n`.repeat(i + 1));
    Deno.utimeSync(p, past, past);
  }
}

function cacheFile(store: string): string {
  const dir = `${store}/cache/stat`;
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"));
  assertEquals(names.length, 1);
  return `${dir}/${names[0]}`;
}

async function add(store: string, src: string, ...more: string[]): Promise<string> {
  const r = await hd(["cas", "add", src, ...more], { store });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function verifyClean(store: string): Promise<void> {
  const v = await hd(["cas", "verify"], { store });
  assertEquals(v.code, 0, v.stdout + v.stderr);
}

Deno.test("a stat cache made against another store is not trusted (new HD_HOME, old cache)", async () => {
  using d = tempDir();
  const src = `${d.path}/proj`;
  project(src);
  const root = await add(`${d.path}/s1`, src);
  await add(`${d.path}/s1`, src); // the cache is now complete (dir ids too)
  // A new store, the old store's cache copied in (same name: same path).
  Store.open(`${d.path}/s2`);
  const name = cacheFile(`${d.path}/s1`).split("/").pop();
  Deno.mkdirSync(`${d.path}/s2/cache/stat`, { recursive: true });
  Deno.copyFileSync(cacheFile(`${d.path}/s1`), `${d.path}/s2/cache/stat/${name}`);
  assertEquals(await add(`${d.path}/s2`, src), root);
  await verifyClean(`${d.path}/s2`);

  // The project's own cache (.hd/statcache.json, what hd up uses), in process.
  const a = Store.open(`${d.path}/s3`);
  const p = `${src}/.hd-cache.json`;
  const c = StatCache.load(p, a);
  ingestTree(a, src, { cache: c });
  c.save(p);
  const b = Store.open(`${d.path}/s4`);
  const c2 = StatCache.load(p, b);
  assertEquals(c2.rejected, "MAC mismatch (damaged, or another store's)");
  const r = ingestTree(b, src, { cache: c2 });
  assertEquals(r.cacheHits, 0);
  assertEquals(verifyStore(b, dagReferences).missing, []);
  assert(b.has(r.root));
});

/** Edits the cache file's text (keeping it a well-formed JSON file) and re-adds. */
async function tampered(edit: (text: string, ids: string[]) => string): Promise<void> {
  using d = tempDir();
  const src = `${d.path}/proj`;
  project(src);
  const store = `${d.path}/s`;
  const root = await add(store, src);
  await add(store, src);
  const f = cacheFile(store);
  const text = Deno.readTextFileSync(f);
  const dirIds = Object.values(JSON.parse(text).dirs as Record<string, [string]>).map((r) => r[0]);
  assert(dirIds.length >= 3, "directory ids are cached");
  Deno.writeTextFileSync(f, edit(text, dirIds));
  // Also add an unrelated tree so that a wrong id could name an existing tree.
  assertEquals(await add(store, src), root);
  assertEquals(await add(store, src, "--no-cache"), root);
  await verifyClean(store);
}

Deno.test("a stat cache with one hex digit of a directory id flipped: re-scan, same root", async () => {
  await tampered((text, ids) => {
    const id = ids[0];
    const flipped = id.slice(0, 10) + (id[10] === "0" ? "1" : "0") + id.slice(11);
    return text.replace(id, flipped);
  });
});

Deno.test("a stat cache with a directory id swapped for another's: re-scan, same root", async () => {
  await tampered((text, ids) => text.replace(`["${ids[0]}"`, `["${ids[1]}"`));
});

Deno.test("a garbage, truncated or empty stat cache is a re-scan, never an error", async () => {
  for (
    const edit of [
      () => "\u0000\u0001garbage{{{",
      (t: string) => t.slice(0, Math.floor(t.length / 2)),
      () => "",
      () => '{"mac":"' + "0".repeat(64) + '","version":3,"rows":[]}',
      () => "[]",
    ]
  ) await tampered(edit);
});

Deno.test("a valid cache naming objects the store lost (no gc) re-reads those files", async () => {
  using d = tempDir();
  const src = `${d.path}/proj`;
  project(src);
  const store = `${d.path}/s`;
  const root = await add(store, src);
  await add(store, src);
  // Lose every pack by hand (not a gc: the generation stays, the cache stays valid).
  for (const e of Deno.readDirSync(`${store}/packs`)) Deno.removeSync(`${store}/packs/${e.name}`);
  const r = await hd(["cas", "add", src, "--json"], { store });
  assertEquals(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assertEquals(j.root, root);
  assertEquals(j.bytesRead > 0, true, "the files were read again");
  await verifyClean(store);
});

Deno.test("schema: malformed rows inside an authentic cache are misses, not errors", () => {
  using d = tempDir();
  const src = `${d.path}/proj`;
  project(src);
  const s = Store.open(`${d.path}/s`);
  const p = `${d.path}/c.json`;
  const c = StatCache.load(p, s);
  const first = ingestTree(s, src, { cache: c });
  c.save(p);
  const again = StatCache.load(p, s);
  assertEquals(again.rejected, null);
  assertEquals(ingestTree(s, src, { cache: again }).cacheHits, 30);
  // Rewrite the body with malformed rows and a MAC made with the store's own key (as a bug in
  // hd itself could): the rows are checked when used.
  const j = JSON.parse("{" + Deno.readTextFileSync(p).slice(74));
  const names = Object.keys(j.rows);
  j.rows[names[0]] = [1, 2];
  j.rows[names[1]][5] = ["not an id"];
  j.rows[names[2]][5] = 42;
  for (const k of Object.keys(j.dirs)) j.dirs[k][0] = "zz";
  const inner = JSON.stringify(j);
  const key = s.identity().key;
  const bytes = new TextEncoder().encode(inner.slice(1));
  const buf = new Uint8Array(key.length + bytes.length);
  buf.set(key);
  buf.set(bytes, key.length);
  Deno.writeTextFileSync(p, `{"mac":"${blake3Hex(buf)}",${inner.slice(1)}`);
  const bad = StatCache.load(p, s);
  assertEquals(bad.rejected, null, "the MAC holds");
  const r = ingestTree(s, src, { cache: bad });
  assertEquals(r.root, first.root);
  assertEquals(r.cacheHits, 27, "three malformed rows were misses");
});

Deno.test("rows recorded in a scan: forget drops one, a re-record wins, the same process reuses them after a save", () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const p = `${d.path}/c.json`;
  const id = s.putObject(new TextEncoder().encode("x"));
  const past = Date.now() - 10_000;
  const sig = (ino: number) => ({ size: 1, mtime: past, ctime: past, ino, mode: 0o100644 });
  const file = { type: "file" as const, mode: 0o100644, size: 1, chunks: [id] };
  const c = StatCache.empty(s);
  c.record("a", sig(1), file);
  c.record("b", sig(2), file);
  c.record("dir/c", sig(3), file);
  c.record("b", sig(22), file); // recorded again: the later row counts
  c.forget("a");
  c.record("d", sig(4), { type: "file", mode: 0o120777, size: 1, target: 'a "quoted" \\ target' });
  assert(c.save(p));
  // the same process, a second scan: the rows saved above answer it
  assertEquals(c.lookup("b", sig(22))?.chunks, [id]);
  assertEquals(c.lookup("a", sig(1)), null, "forgotten");
  assertEquals(c.lookup("d", sig(4))?.target, 'a "quoted" \\ target');
  // a fresh load reads the same rows
  const again = StatCache.load(p, s);
  assertEquals(again.rejected, null);
  assertEquals(again.lookup("b", sig(2)), null, "the first row of b was replaced");
  assertEquals(again.lookup("b", sig(22))?.chunks, [id]);
  assertEquals(again.lookup("dir/c", sig(3))?.chunks, [id]);
  assertEquals(again.lookup("a", sig(1)), null);
  // keepOld: rows recorded now and the older ones, all in one file
  again.record("e", sig(5), file);
  assert(again.save(p, true));
  const third = StatCache.load(p, s);
  for (const [k, i] of [["b", 22], ["dir/c", 3], ["d", 4], ["e", 5]] as const) {
    assert(third.lookup(k, sig(i)) !== null, k);
  }
});

Deno.test("rows of a large scan spill to an unlinked temp file: saved, reloaded and reused as when kept in memory", () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const p = `${d.path}/c.json`;
  const id = s.putObject(new TextEncoder().encode("x"));
  const past = Date.now() - 10_000;
  const sig = (ino: number) => ({ size: 1, mtime: past, ctime: past, ino, mode: 0o100644 });
  const file = { type: "file" as const, mode: 0o100644, size: 1, chunks: [id] };
  // ~200 bytes a row, 60k rows: ~12 MiB of rows, most of them spilled
  const name = (i: number) => `node_modules/pkg${i % 400}/lib/${"é".repeat(20)}-file${i}.js`;
  const N = 60_000;
  const c = StatCache.empty(s);
  for (let i = 0; i < N; i++) c.record(name(i), sig(i + 1), file);
  // the rows went to a file in the store's tmp/, unlinked (nothing of it is left there)
  const spills = [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      return "";
    }
  }).filter((l) => l.startsWith(`${s.root}/tmp/stat-rows`));
  assertEquals(spills.length, 1, "one spill file open");
  assert(spills[0].endsWith(" (deleted)"), spills[0]);
  const tmp = [...Deno.readDirSync(`${s.root}/tmp`)].map((e) => e.name);
  assertEquals(tmp.filter((n) => n.startsWith("stat-rows")), []);
  assert(c.save(p));
  const size = Deno.statSync(p).size;
  assert(size > 10 << 20, `the saved cache holds every row (${size} bytes)`);
  // a fresh load: authentic, every row there
  const again = StatCache.load(p, s);
  assertEquals(again.rejected, null);
  for (const i of [0, 1, 4095, 30_000, N - 2, N - 1]) {
    assertEquals(again.lookup(name(i), sig(i + 1))?.chunks, [id], name(i));
  }
  // the same process, a second scan: the spilled rows answer it
  assertEquals(c.lookup(name(12_345), sig(12_346))?.chunks, [id]);
});

Deno.test("a stat cache linked to /dev/zero, to a file elsewhere, or made a FIFO loads empty at once", () => {
  using tmp = tempDir();
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const hdDir = `${tmp.path}/p/.hd`;
  Deno.mkdirSync(hdDir, { recursive: true });
  const path = `${hdDir}/statcache.json`;
  Deno.writeTextFileSync(`${tmp.path}/elsewhere.json`, '{"mac":"x"}');
  const table: [string, () => void][] = [
    ["a link to /dev/zero", () => Deno.symlinkSync("/dev/zero", path)],
    ["a link to a file elsewhere", () => Deno.symlinkSync(`${tmp.path}/elsewhere.json`, path)],
    ["a FIFO", () => void new Deno.Command("mkfifo", { args: [path] }).outputSync()],
    ["a directory", () => Deno.mkdirSync(path)],
  ];
  for (const [what, ship] of table) {
    try {
      Deno.removeSync(path);
    } catch { /* none */ }
    ship();
    const c = StatCache.load(path, store); // (before: read without end, or waited forever)
    assertEquals([c.hits, c.misses], [0, 0], what);
    assert(c.rejected !== null && c.rejected.includes("Cannot read"), `${what}: ${c.rejected}`);
  }
});
