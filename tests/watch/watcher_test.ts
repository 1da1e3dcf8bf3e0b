import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { PathFilter } from "../../src/scan/filter.ts";
import { GlobSet } from "../../src/watch/pathmap.ts";
import { ProjectWatcher } from "../../src/watch/watcher.ts";
import { waitFor } from "../services/_util.ts";

Deno.test("watcher: a burst of 500 files is one batch; excluded paths are ignored", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.mkdirSync(`${dir}/.hd/logs`, { recursive: true });
  Deno.mkdirSync(`${dir}/dist`, { recursive: true });
  const batches: string[][] = [];
  const w = new ProjectWatcher(dir, {
    debounceMs: 200,
    filter: new PathFilter([], ["**/*.log"]),
    ignore: new GlobSet(["dist"]),
    onBatch: (p) => void batches.push(p),
  });
  w.start();
  await new Promise((r) => setTimeout(r, 100));
  // like `git checkout`: many files in a new directory, in quick succession
  Deno.mkdirSync(`${dir}/src/pkg`, { recursive: true });
  for (let i = 0; i < 500; i++) Deno.writeTextFileSync(`${dir}/src/pkg/f${i}.js`, `${i}`);
  Deno.writeTextFileSync(`${dir}/.hd/logs/api.log`, "log line");
  Deno.writeTextFileSync(`${dir}/dist/bundle.js`, "built");
  Deno.writeTextFileSync(`${dir}/x.log`, "ignored");
  await waitFor(() => batches.length > 0, "a batch");
  await new Promise((r) => setTimeout(r, 400));
  await w.close();
  assertEquals(batches.length, 1);
  const b = batches[0];
  assert(b.includes("src/pkg") || b.includes("src"), `directory reported: ${b.slice(0, 5)}`);
  assert(
    !b.some((p) => p.startsWith(".hd") || p.startsWith("dist") || p.endsWith(".log")),
    b.join(),
  );
});

Deno.test("watcher: changes during a slow batch are delivered afterwards, not lost", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const batches: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const w = new ProjectWatcher(dir, {
    debounceMs: 30,
    onBatch: async (p) => {
      batches.push(p);
      if (batches.length === 1) await gate; // a build step running
    },
  });
  w.start();
  await new Promise((r) => setTimeout(r, 50));
  Deno.writeTextFileSync(`${dir}/a.txt`, "1");
  await waitFor(() => batches.length === 1, "first batch");
  Deno.writeTextFileSync(`${dir}/b.txt`, "2");
  await new Promise((r) => setTimeout(r, 200));
  assertEquals(batches.length, 1); // held back while the first is handled
  release();
  await waitFor(() => batches.length === 2, "second batch");
  await w.close();
  assertEquals(batches[0], ["a.txt"]);
  assertEquals(batches[1], ["b.txt"]);
});

Deno.test("watcher: an editor's atomic save (temp + rename) reports the saved file", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/main.js`, "v1");
  const batches: string[][] = [];
  const w = new ProjectWatcher(dir, { debounceMs: 40, onBatch: (p) => void batches.push(p) });
  w.start();
  await new Promise((r) => setTimeout(r, 50));
  Deno.writeTextFileSync(`${dir}/.main.js.tmp123`, "v2");
  Deno.renameSync(`${dir}/.main.js.tmp123`, `${dir}/main.js`);
  await waitFor(() => batches.length > 0, "batch");
  await w.close();
  assert(batches.flat().includes("main.js"), JSON.stringify(batches));
});

Deno.test("watcher: excluded top-level directories cost no watch; recreated ones are re-watched", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.mkdirSync(`${dir}/node_modules/pkg`, { recursive: true });
  Deno.mkdirSync(`${dir}/src`);
  const batches: string[][] = [];
  const w = new ProjectWatcher(dir, {
    debounceMs: 30,
    filter: new PathFilter([], ["node_modules"]),
    onBatch: (p) => void batches.push(p),
  });
  w.start();
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 50; i++) Deno.writeTextFileSync(`${dir}/node_modules/pkg/f${i}.js`, "x");
  await new Promise((r) => setTimeout(r, 150));
  assertEquals(w.events, 0);
  assertEquals(batches, []);
  // src removed and made again (a checkout, a rename over it): edits inside still arrive
  Deno.removeSync(`${dir}/src`, { recursive: true });
  Deno.mkdirSync(`${dir}/src`);
  await waitFor(() => batches.length > 0, "batch for the new src");
  await new Promise((r) => setTimeout(r, 100));
  batches.length = 0;
  Deno.writeTextFileSync(`${dir}/src/late.js`, "1");
  await waitFor(() => batches.flat().includes("src/late.js"), "edit in the recreated directory");
  await w.close();
});

Deno.test("watcher: when the kernel drops events (its queue overflowed), onRescan's paths are delivered", async () => {
  let queue = 16384;
  try {
    queue = Number(Deno.readTextFileSync("/proc/sys/fs/inotify/max_queued_events").trim());
  } catch { /* the default */ }
  using tmp = tempDir();
  const dir = tmp.path;
  Deno.mkdirSync(`${dir}/src`);
  const batches: string[][] = [];
  let rescans = 0;
  const w = new ProjectWatcher(dir, {
    debounceMs: 30,
    onBatch: (paths) => void batches.push(paths),
    onRescan: () => (rescans++, ["found-by-a-scan.txt"]),
  });
  w.start();
  try {
    // written while this thread does nothing else: the kernel queues more events (three a file)
    // than it keeps, and says so
    const n = Math.ceil(queue / 2) + 100;
    for (let i = 0; i < n; i++) Deno.writeTextFileSync(`${dir}/src/f${i}.txt`, "x");
    await waitFor(() => rescans > 0, "the rescan", 10_000);
    await waitFor(
      () => batches.some((b) => b.includes("found-by-a-scan.txt")),
      "onRescan's paths in a batch",
      10_000,
    );
    assert(w.relevantEvents > 0);
  } finally {
    await w.close();
  }
});
