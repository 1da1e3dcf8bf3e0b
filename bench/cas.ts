/**
 * CAS bench: cold add (MB/s, files/s) beside restic, git and b3sum; no-change re-scan beside
 * `git status`; one-file edit to a new root hash beside `git add && git write-tree`; store growth
 * after editing 1% of the files beside restic's repository growth.
 * @module
 */
import { Store } from "../src/cas/store.ts";
import { ingestFile, ingestTree } from "../src/scan/ingest.ts";
import { StatCache } from "../src/scan/statcache.ts";
import { type Bench, type BenchRow, dropCaches, median, percentile, sh, timeCmd } from "./lib.ts";

const REPO = new URL("..", import.meta.url).pathname;
const HD = [Deno.execPath(), "run", "-A", "--quiet", `${REPO}cli.ts`];

/** A node_modules-shaped tree of `n` files (deterministic text and some binary), mtimes in the past. */
export function syntheticTree(root: string, n: number): void {
  const past = new Date(Date.now() - 3600_000);
  for (let i = 0; i < n; i++) {
    const dir = `${root}/node_modules/pkg${i % 400}/${i % 3 ? "lib" : "dist"}`;
    Deno.mkdirSync(dir, { recursive: true });
    const p = `${dir}/file${i}.${i % 10 === 0 ? "bin" : "js"}`;
    let body: Uint8Array;
    if (i % 10 === 0) {
      body = new Uint8Array(2048 + (i % 7) * 4096);
      let x = i + 1;
      for (let k = 0; k < body.length; k++) {
        x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0;
        body[k] = x & 0xff;
      }
    } else {
      body = new TextEncoder().encode(
        `// module ${i}\n` +
          Array.from(
            { length: 5 + (i % 60) },
            (_, k) => `export const v${k} = ${i * k} + "${i % 97}";\n`,
          )
            .join(""),
      );
    }
    Deno.writeFileSync(p, body);
    Deno.utimeSync(p, past, past);
  }
}

async function duBytes(path: string): Promise<number> {
  return Number((await sh(`du -sb ${path} | cut -f1`)).trim());
}

async function treeStats(path: string): Promise<{ files: number; bytes: number }> {
  const files = Number((await sh(`find ${path} -type f | wc -l`)).trim());
  const bytes = Number(
    (await sh(`find ${path} -type f -printf '%s\\n' | awk '{s+=$1} END {print s+0}'`)).trim(),
  );
  return { files, bytes };
}

export const bench: Bench = {
  name: "cas",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const row = (
      c: string,
      tool: string,
      value: number,
      unit: string,
      extra?: Record<string, unknown>,
    ) => rows.push({ bench: "cas", case: c, tool, value, unit, extra });
    const env = { RESTIC_PASSWORD: "bench", RESTIC_CACHE_DIR: `${workDir}/restic-cache` };

    // Startup cost of the hd CLI itself (deno run; a compiled binary starts faster).
    const starts = [];
    for (let i = 0; i < 3; i++) starts.push(await timeCmd(HD[0], [...HD.slice(1), "--version"]));
    row("startup (hd --version)", "hd", median(starts), "ms");

    const trees: { name: string; path: string }[] = [
      { name: "npm node_modules", path: "/usr/lib/node_modules/npm" },
    ];
    if (!quick) trees.push({ name: "/usr/share", path: "/usr/share" });
    for (const extra of (Deno.env.get("HD_BENCH_TREES") ?? "").split(",").filter(Boolean)) {
      trees.push({ name: extra, path: extra });
    }
    for (const t of trees) {
      const { files, bytes } = await treeStats(t.path);
      const mb = bytes / 1e6;
      log(`cold add ${t.name}: ${files} files, ${mb.toFixed(1)} MB`);
      const per = (tool: string, ms: number, growth?: number) => {
        row(`cold add ${t.name}`, tool, ms, "ms", {
          files,
          MB: +mb.toFixed(1),
          store_bytes: growth,
        });
        row(`cold add ${t.name} throughput`, tool, mb / (ms / 1000), "MB/s");
        row(`cold add ${t.name} files/s`, tool, files / (ms / 1000), "files/s");
      };
      const store = `${workDir}/store-${rows.length}`;
      await dropCaches();
      per(
        "hd",
        await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", store, t.path]),
        await duBytes(store),
      );
      const rrepo = `${workDir}/restic-${rows.length}`;
      await timeCmd("restic", ["init", "-q", "-r", rrepo], { env });
      await dropCaches();
      per(
        "restic",
        await timeCmd("restic", ["backup", "-q", "-r", rrepo, t.path], { env }),
        await duBytes(rrepo),
      );
      const gdir = `${workDir}/git-${rows.length}`;
      await timeCmd("git", ["init", "-q", "--bare", gdir]);
      await dropCaches();
      per(
        "git add -A",
        await timeCmd("git", ["--git-dir", gdir, "--work-tree", t.path, "add", "-A"]),
        await duBytes(gdir),
      );
      await dropCaches();
      per(
        "b3sum (hash only)",
        await timeCmd("sh", ["-c", `find ${t.path} -type f -print0 | xargs -0 b3sum > /dev/null`]),
      );
      for (const p of [store, rrepo, gdir]) Deno.removeSync(p, { recursive: true });
    }

    // The 10,000-file tree: re-scan, one-file edit, growth after 1% edits.
    const tree = `${workDir}/tree10k`;
    syntheticTree(tree, 10_000);
    const store = `${workDir}/store10k`;
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", store, tree]);
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", store, tree]); // cache saved
    const gdir = `${workDir}/git10k`;
    await timeCmd("git", ["init", "-q", "--bare", gdir]);
    const git = (...a: string[]) => ["--git-dir", gdir, "--work-tree", tree, ...a];
    await timeCmd("git", git("add", "-A"));
    await timeCmd("git", git("status", "--porcelain")); // refresh the index
    const hdScan: number[] = [];
    const gitScan: number[] = [];
    for (let i = 0; i < 5; i++) {
      hdScan.push(await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", store, tree]));
      gitScan.push(await timeCmd("git", git("status", "--porcelain")));
    }
    row("no-change re-scan 10k files (CLI wall time)", "hd", median(hdScan), "ms");
    row("no-change re-scan 10k files (CLI wall time)", "git status", median(gitScan), "ms");
    // In-process scan (what `hd up` does after start, without process startup).
    const s = Store.open(store);
    const cachePath = `${workDir}/sc.json`;
    const c0 = StatCache.empty(s);
    const first = ingestTree(s, tree, { cache: c0 });
    c0.save(cachePath);
    const inproc: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = ingestTree(s, tree, { cache: StatCache.load(cachePath, s) });
      inproc.push(performance.now() - t0);
      if (r.bytesRead !== 0) throw new Error(`re-scan read ${r.bytesRead} bytes`);
    }
    row("no-change re-scan 10k files (in process)", "hd", median(inproc), "ms");

    // One-file edit → new root hash (the watcher's path: ingest one file, rehash its ancestors).
    const t = first.tree;
    const editMs: number[] = [];
    const gitEdit: number[] = [];
    for (let i = 0; i < 20; i++) {
      const rel = `node_modules/pkg${(i * 37) % 400}/lib/file${(i * 37) % 400 + 400}.js`;
      const abs = `${tree}/${rel}`;
      let target = rel;
      try {
        Deno.statSync(abs);
      } catch {
        target = `node_modules/pkg1/lib/file1.js`;
      }
      Deno.writeTextFileSync(`${tree}/${target}`, `// edit ${i}\n`, { append: true });
      const t0 = performance.now();
      const f = ingestFile(s, `${tree}/${target}`, Deno.lstatSync(`${tree}/${target}`));
      t.setFile(target, f);
      t.commit(s);
      editMs.push(performance.now() - t0);
      gitEdit.push(
        await timeCmd("sh", [
          "-c",
          `git ${git("add", target).join(" ")} && git ${git("write-tree").join(" ")}`,
        ]),
      );
    }
    row("one-file edit to new root hash p50", "hd", median(editMs), "ms", { rehashed: t.rehashed });
    row("one-file edit to new root hash p95", "hd", percentile(editMs, 95), "ms");
    row("one-file edit to new root hash p50", "git add+write-tree", median(gitEdit), "ms");

    // Store growth after editing 1% of the files.
    const g = `${workDir}/growth`;
    syntheticTree(`${g}/tree`, 10_000);
    const gstore = `${g}/store`;
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", gstore, `${g}/tree`]);
    const rrepo = `${g}/restic`;
    await timeCmd("restic", ["init", "-q", "-r", rrepo], { env });
    await timeCmd("restic", ["backup", "-q", "-r", rrepo, `${g}/tree`], { env });
    const hd0 = await duBytes(gstore);
    const r0 = await duBytes(rrepo);
    for (let i = 0; i < 10_000; i += 100) {
      const dir = `${g}/tree/node_modules/pkg${i % 400}/${i % 3 ? "lib" : "dist"}`;
      const p = `${dir}/file${i}.${i % 10 === 0 ? "bin" : "js"}`;
      Deno.writeTextFileSync(p, `// edited\n`, { append: true });
    }
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", gstore, `${g}/tree`]);
    await timeCmd("restic", ["backup", "-q", "-r", rrepo, `${g}/tree`], { env });
    row(
      "store growth after editing 1% of 10k files",
      "hd",
      (await duBytes(gstore)) - hd0,
      "bytes",
      { before: hd0 },
    );
    row(
      "store growth after editing 1% of 10k files",
      "restic",
      (await duBytes(rrepo)) - r0,
      "bytes",
      { before: r0 },
    );
    return rows;
  },
};
