import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { PathFilter } from "../../src/scan/filter.ts";
import { ingestFile, ingestTree, ingestTreeParallel, statSig } from "../../src/scan/ingest.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { RACY_MS, StatCache } from "../../src/scan/statcache.ts";
import { tempDir } from "../_helpers.ts";
import type { MemDir } from "../../src/dag/tree.ts";

function makeTree(root: string, n: number): void {
  const past = new Date(Date.now() - 60_000); // a tree last edited a minute ago
  for (let i = 0; i < n; i++) {
    Deno.mkdirSync(`${root}/pkg${i % 20}/lib`, { recursive: true });
    const p = `${root}/pkg${i % 20}/lib/m${i}.js`;
    Deno.writeTextFileSync(p, `module.exports = ${i};\n`.repeat(1 + (i % 7)));
    Deno.utimeSync(p, past, past);
  }
}

Deno.test("re-scanning an unchanged tree reads no file contents", async () => {
  using d = tempDir();
  makeTree(`${d.path}/t`, 500);
  const store = Store.open(`${d.path}/s`);
  const cachePath = `${d.path}/cache.json`;
  const c1 = StatCache.load(cachePath, store);
  const r1 = ingestTree(store, `${d.path}/t`, { cache: c1 });
  assertEquals(r1.files, 500);
  assert(r1.bytesRead > 0);
  c1.save(cachePath);
  const c2 = StatCache.load(cachePath, store);
  const r2 = ingestTree(store, `${d.path}/t`, { cache: c2 });
  assertEquals(r2.root, r1.root);
  assertEquals(r2.bytesRead, 0);
  assertEquals(r2.cacheHits, 500);
  assertEquals(r2.tree.rehashed, 0, "no directory was re-encoded: their ids came from the cache");
  // One edit: only that file is read.
  Deno.writeTextFileSync(`${d.path}/t/pkg3/lib/m3.js`, "changed\n");
  c2.save(cachePath);
  const c3 = StatCache.load(cachePath, store);
  const r3 = ingestTree(store, `${d.path}/t`, { cache: c3 });
  assertEquals(r3.bytesRead, 8);
  assert(r3.root !== r1.root);
  assertEquals(r3.tree.rehashed, 3, "only pkg3/lib, pkg3 and the root were re-encoded");
  // The same tree ingested without any cache gives the same root: reuse changed nothing.
  assertEquals(ingestTree(Store.open(`${d.path}/fresh`), `${d.path}/t`).root, r3.root);
  // The edited file was written just before the save: it is "racily clean" and read once more,
  // so an edit in the same timestamp tick as the save cannot go unnoticed.
  c3.save(cachePath);
  Deno.writeTextFileSync(`${d.path}/t/pkg3/lib/m3.js`, "CHANGED\n"); // same size, same tick
  const r4 = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(cachePath, store),
  });
  assertEquals(r4.bytesRead, 8);
  assert(r4.root !== r3.root);
  await new Promise((r) => setTimeout(r, RACY_MS + 100));
});

Deno.test("a gc generation change drops the stat cache", () => {
  using d = tempDir();
  makeTree(`${d.path}/t`, 20);
  const store = Store.open(`${d.path}/s`);
  const c = StatCache.load(`${d.path}/c.json`, store);
  ingestTree(store, `${d.path}/t`, { cache: c });
  c.save(`${d.path}/c.json`);
  const again = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(`${d.path}/c.json`, store),
  });
  assertEquals(again.cacheHits, 20);
  store.bumpGeneration();
  const r = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(`${d.path}/c.json`, store),
  });
  assertEquals(r.cacheHits, 0);
});

Deno.test("default excludes and include/exclude globs decide what is tracked", () => {
  using d = tempDir();
  const t = `${d.path}/t`;
  for (
    const p of [
      ".git/config",
      "node_modules/.cache/x",
      "node_modules/a/index.js",
      "src/a.ts",
      "src/.DS_Store",
      "target/debug/x",
      "notes.log",
      "README.md",
    ]
  ) {
    Deno.mkdirSync(`${t}/${p.split("/").slice(0, -1).join("/")}`, { recursive: true });
    Deno.writeTextFileSync(`${t}/${p}`, p);
  }
  const store = Store.open(`${d.path}/s`);
  const all = ingestTree(store, t);
  const paths = (r: typeof all) => {
    const out: string[] = [];
    const walk = (prefix: string, dir: { entries: Map<string, unknown> }) => {
      for (const [name, c] of dir.entries) {
        const p = prefix ? `${prefix}/${name}` : name;
        if (c && typeof c === "object" && "entries" in c) {
          walk(p, c as { entries: Map<string, unknown> });
        } else out.push(p);
      }
    };
    walk("", r.tree.root);
    return out.sort();
  };
  assertEquals(paths(all), ["README.md", "node_modules/a/index.js", "notes.log", "src/a.ts"]);
  const some = ingestTree(store, t, { filter: new PathFilter(["src", "README.md"], ["**/*.log"]) });
  assertEquals(paths(some), ["README.md", "src/a.ts"]);
});

Deno.test("the parallel ingest (worker threads) gives the same root as the single-threaded one", async () => {
  using d = tempDir();
  makeTree(`${d.path}/t`, 400);
  const big = new Uint8Array(20 << 20); // streamed in blocks, partial replies
  for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
  Deno.writeFileSync(`${d.path}/t/big.bin`, big);
  Deno.writeFileSync(`${d.path}/t/empty`, new Uint8Array(0));
  Deno.linkSync(`${d.path}/t/big.bin`, `${d.path}/t/hardlink.bin`);
  Deno.symlinkSync("big.bin", `${d.path}/t/link`);
  const a = ingestTree(Store.open(`${d.path}/s1`), `${d.path}/t`);
  const store2 = Store.open(`${d.path}/s2`);
  const b = await ingestTreeParallel(store2, `${d.path}/t`, { workers: 2 });
  assertEquals(b.root, a.root);
  assertEquals(b.files, a.files);
  assertEquals(verifyStore(store2, dagReferences).corrupt, []);
  assertEquals(verifyStore(store2, dagReferences).missing, []);
});

Deno.test("recording one file (as the watcher does) invalidates its directories' recorded ids", () => {
  using d = tempDir();
  makeTree(`${d.path}/t`, 40);
  const store = Store.open(`${d.path}/s`);
  const cachePath = `${d.path}/c.json`;
  const c1 = StatCache.load(cachePath, store);
  ingestTree(store, `${d.path}/t`, { cache: c1 });
  c1.save(cachePath);
  // The watcher's path: one file changes, its row is recorded and the cache saved incrementally.
  const p = `${d.path}/t/pkg2/lib/m2.js`;
  Deno.writeTextFileSync(p, "edited by the watcher\n");
  const past = new Date(Date.now() - 30_000);
  Deno.utimeSync(p, past, past);
  const c2 = StatCache.load(cachePath, store);
  c2.record("pkg2/lib/m2.js", statSig(Deno.lstatSync(p)), ingestFile(store, p, Deno.lstatSync(p)));
  c2.save(cachePath, true);
  // A full scan now hits the cache for every file, yet must not reuse the stale directory ids.
  const r = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(cachePath, store),
  });
  assertEquals(r.bytesRead, 0);
  assertEquals(r.root, ingestTree(Store.open(`${d.path}/fresh`), `${d.path}/t`).root);
});

Deno.test("the walk's one-name exclude check agrees with the full check below kept parents", () => {
  const filters = [
    new PathFilter(),
    new PathFilter([], ["node_modules", "**/*.log", "dist"]), // a wildcard name: no fast path
    new PathFilter(["src"], ["node_modules", "a/b", "**/cache"]),
    new PathFilter([], ["node_modules", "a/b", "**/cache", "x/**/y"]),
  ];
  const paths = [
    "node_modules",
    "src/node_modules",
    "a",
    "a/b",
    "a/b/c",
    "c/a/b",
    "cache",
    "src/cache",
    "src/cache/x.js",
    ".git",
    "src/.git",
    ".hd",
    "src/.hd",
    "target",
    "src/target",
    "x/y",
    "x/q/y",
    "x/q/y/z",
    "app.log",
    "dist/app.js",
    "src/a.js",
  ];
  let compared = 0;
  for (const f of filters) {
    for (const p of paths) {
      const segs = p.split("/");
      // the walk asks only about entries whose parents it entered (not excluded)
      const parentsKept = segs.slice(1).every((_, i) =>
        !f.excluded(segs.slice(0, i + 1).join("/"))
      );
      if (!parentsKept) continue;
      compared++;
      assertEquals(f.excludedEntry(p, segs[segs.length - 1]), f.excluded(p), p);
      if (!f.excluded(p)) assertEquals(f.includesUnexcluded(p), f.includesFile(p), p);
    }
  }
  assert(compared > 40);
});

Deno.test("a hardlink the walk reaches after its first path was read shares its node (streamed walk)", async () => {
  using d = tempDir();
  const t = `${d.path}/t`;
  Deno.mkdirSync(`${t}/a`, { recursive: true });
  Deno.mkdirSync(`${t}/m`);
  Deno.mkdirSync(`${t}/z`);
  Deno.writeTextFileSync(`${t}/a/first.txt`, "shared bytes\n".repeat(100));
  // Many files between the two paths (in whichever order readdir gives them): the file read first
  // is placed before the walk reaches the other.
  for (let i = 0; i < 300; i++) Deno.writeTextFileSync(`${t}/m/f${i}.js`, `// ${i}\n`);
  Deno.linkSync(`${t}/a/first.txt`, `${t}/z/second.txt`);
  const a = ingestTree(Store.open(`${d.path}/s1`), t);
  assertEquals(a.files, 302);
  const first = (a.tree.root.entries.get("a") as MemDir).entries.get("first.txt");
  const second = (a.tree.root.entries.get("z") as MemDir).entries.get("second.txt");
  assert(first !== undefined);
  assertEquals(second, first);
  const b = await ingestTreeParallel(Store.open(`${d.path}/s2`), t, { workers: 2 });
  assertEquals(b.root, a.root);
  assertEquals(b.files, a.files);
});

Deno.test("a cold ingest writes each finished directory as it goes; the returned tree still reads and edits", () => {
  using d = tempDir();
  const t = `${d.path}/t`;
  for (let i = 0; i < 6; i++) {
    Deno.mkdirSync(`${t}/p${i}/lib`, { recursive: true });
    Deno.writeTextFileSync(`${t}/p${i}/lib/a.js`, `// ${i}\n`);
    Deno.writeTextFileSync(`${t}/p${i}/index.js`, `export * from "./lib/a.js"; // ${i}\n`);
  }
  const store = Store.open(`${d.path}/s`);
  const cache = StatCache.empty(store);
  const r = ingestTree(store, t, { cache });
  const p0 = r.tree.root.entries.get("p0") as MemDir;
  assert(p0.id !== null && store.has(p0.id)); // stored before the final commit
  assertEquals([...p0.entries.keys()].sort(), ["index.js", "lib"]); // reloads from the store
  // The same root from a fresh store.
  const again = ingestTree(Store.open(`${d.path}/s2`), t);
  assertEquals(again.root, r.root);
  // Edits through the returned tree work as on any tree.
  r.tree.setFile(
    "p3/lib/b.js",
    ingestFile(store, `${t}/p1/index.js`, Deno.lstatSync(`${t}/p1/index.js`)),
  );
  const edited = r.tree.commit(store);
  Deno.writeTextFileSync(`${t}/p3/lib/b.js`, Deno.readTextFileSync(`${t}/p1/index.js`));
  assertEquals(ingestTree(Store.open(`${d.path}/s3`), t).root, edited);
});
