/**
 * CAS bench, measured so that a lead is real (issue 14, "The bench must be honest first"):
 *
 * - cold add of real trees — the installed node_modules of a real app (express, typescript,
 *   eslint, webpack, jest, babel, rxjs, lodash, date-fns: ~20k files; npm-installed once and cached under
 *   /var/tmp/hd-bench-trees; --quick installs a small app instead) and /usr/share (full run only)
 *   — beside `restic backup`, `git add -A` (node_modules only: 15 s a round on /usr/share) and the
 *   hashing limit: b3sum over the same files, 256 files per process, one process per core;
 * - peak RSS of the cold add of synthetic 1k / 10k / 100k-file trees (100k: full run only, 2
 *   rounds, git 1) beside restic and git;
 * - the no-change re-scan (`hd cas add` CLI with its stat cache) beside `git status` on a
 *   committed repo whose index is refreshed;
 * - a one-file edit to a new root through the CLI (`hd cas add` re-scan) beside `git add` +
 *   `git write-tree` (two process starts), and the in-process figure labelled as such;
 * - store growth after editing 1% of 10k files beside restic's repository growth.
 *
 * Every comparison alternates the tools within each round (hd, peer, hd, peer…), drops the page
 * cache before each cold run, and reports the median with min–max and the load average. Peak RSS
 * is the child's ru_maxrss as GNU time (`/usr/bin/time -f %M`, Debian's `time`) reports it: the
 * same outside measurement for every tool (hd's worker threads included), nothing added to hd.
 * @module
 */
import { Store } from "../src/cas/store.ts";
import { ingestFile, ingestTree } from "../src/scan/ingest.ts";
import { StatCache } from "../src/scan/statcache.ts";
import { v8FlagsArg } from "../src/sys/v8_flags.ts";
import {
  type Bench,
  type BenchRow,
  dropCaches,
  loadavg,
  median,
  percentile,
  sh,
  spread,
  timeCmd,
} from "./lib.ts";

const REPO = new URL("..", import.meta.url).pathname;
// hd as `deno task hd` and the compiled binary run it: with hd's V8 flags (src/sys/v8_flags.ts).
const HD = [Deno.execPath(), "run", "-A", "--quiet", v8FlagsArg(), `${REPO}cli.ts`];
const TREES = "/var/tmp/hd-bench-trees";
const RESTIC_ENV = { RESTIC_PASSWORD: "bench" };

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

/** The dependencies of the "real app" whose installed node_modules is a cold-add tree. */
const APPS: Record<"full" | "quick", Record<string, string>> = {
  full: {
    express: "4.21.2",
    typescript: "5.7.3",
    eslint: "9.18.0",
    webpack: "5.97.1",
    "webpack-cli": "6.0.1",
    jest: "29.7.0",
    "@babel/core": "7.26.7",
    "@babel/preset-env": "7.26.7",
    rxjs: "7.8.1",
    lodash: "4.17.21",
    "date-fns": "4.1.0",
  },
  quick: { express: "4.21.2", eslint: "9.18.0" },
};

/**
 * The node_modules of the bench app, installed with npm on first use (scripts not run) and kept
 * under /var/tmp/hd-bench-trees so re-runs do not download again; null (with the reason logged)
 * when npm or the registry is unavailable.
 */
async function appTree(kind: "full" | "quick", log: (s: string) => void): Promise<string | null> {
  const dir = `${TREES}/cas-app${kind === "quick" ? "-quick" : ""}`;
  const nm = `${dir}/node_modules`;
  try {
    if (Deno.statSync(`${dir}/.installed`).isFile) return nm;
  } catch { /* not yet */ }
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/package.json`,
    JSON.stringify(
      {
        name: `hd-bench-cas-app-${kind}`,
        private: true,
        version: "1.0.0",
        dependencies: APPS[kind],
      },
      null,
      2,
    ),
  );
  log(`installing the ${kind} bench app's node_modules into ${dir} (once)`);
  try {
    await sh(`cd ${dir} && npm install --no-audit --no-fund --ignore-scripts >npm.log 2>&1`);
  } catch (e) {
    log(
      `skipping the node_modules tree: npm install failed (${(e as Error).message.slice(0, 200)})`,
    );
    return null;
  }
  Deno.writeTextFileSync(`${dir}/.installed`, new Date().toISOString());
  return nm;
}

/** One measured run: wall time (ms) and the child's peak RSS (KiB, from GNU time). */
interface Run {
  ms: number;
  rssKiB: number;
}

/** Runs `cmd` under `/usr/bin/time -f %M`; wall time around it; throws when it fails. */
async function measured(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<Run> {
  const out = Deno.makeTempFileSync({ prefix: "hd-bench-rss-" });
  try {
    const ms = await timeCmd("/usr/bin/time", ["-f", "%M", "-o", out, cmd, ...args], opts);
    const rssKiB = Number(Deno.readTextFileSync(out).trim().split("\n").pop());
    return { ms, rssKiB };
  } finally {
    Deno.removeSync(out);
  }
}

async function treeStats(path: string): Promise<{ files: number; bytes: number }> {
  const files = Number((await sh(`find ${path} -type f | wc -l`)).trim());
  const bytes = Number(
    (await sh(`find ${path} -type f -printf '%s\\n' | awk '{s+=$1} END {print s+0}'`)).trim(),
  );
  return { files, bytes };
}

async function duBytes(path: string): Promise<number> {
  return Number((await sh(`du -sb ${path} | cut -f1`)).trim());
}

/** A cold-add contender: prepares an empty target in `dir`, then adds `tree` into it. */
interface Tool {
  name: string;
  prepare?: (dir: string) => Promise<void>;
  run: (tree: string, dir: string) => Promise<Run>;
}

const TOOLS: Record<string, Tool> = {
  hd: {
    name: "hd",
    run: (tree, dir) => measured(HD[0], [...HD.slice(1), "cas", "add", "--store", dir, tree]),
  },
  restic: {
    name: "restic",
    prepare: async (dir) => {
      await timeCmd("restic", ["init", "-q", "-r", dir], { env: RESTIC_ENV });
    },
    run: (tree, dir) =>
      measured("restic", ["backup", "-q", "-r", dir, tree], {
        env: { ...RESTIC_ENV, RESTIC_CACHE_DIR: `${dir}.cache` },
      }),
  },
  git: {
    name: "git add -A",
    prepare: async (dir) => {
      await timeCmd("git", ["init", "-q", "--bare", dir]);
    },
    run: (tree, dir) => measured("git", ["--git-dir", dir, "--work-tree", tree, "add", "-A"]),
  },
  b3sum: {
    name: "b3sum, all cores (hash only)",
    run: (tree) =>
      measured("sh", [
        "-c",
        `find ${tree} -type f -print0 | xargs -0 -n 256 -P ${navigator.hardwareConcurrency} ` +
        `b3sum >/dev/null`,
      ]),
  },
};

/**
 * `rounds` rounds; in each, every tool adds `tree` into a fresh target after the page cache is
 * dropped (tools alternate within the round, the order rotating each round). Returns the runs.
 */
async function coldRounds(
  tree: string,
  tools: Tool[],
  rounds: number,
  workDir: string,
): Promise<Map<Tool, Run[]>> {
  const runs = new Map<Tool, Run[]>(tools.map((t) => [t, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < tools.length; k++) {
      const t = tools[(k + r) % tools.length];
      const dir = `${workDir}/cold-${r}-${k}`;
      await t.prepare?.(dir);
      await dropCaches();
      runs.get(t)!.push(await t.run(tree, dir));
      for (const p of [dir, `${dir}.cache`]) {
        try {
          Deno.removeSync(p, { recursive: true });
        } catch { /* not made */ }
      }
    }
  }
  return runs;
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
    const rounds = quick ? 2 : 5;
    const cold = await dropCaches();
    if (!cold) log("cannot drop the page cache (not root): cold runs are warm");

    // Startup cost of the hd CLI itself (deno run; a compiled binary starts faster).
    const starts = [];
    for (let i = 0; i < 3; i++) starts.push(await timeCmd(HD[0], [...HD.slice(1), "--version"]));
    row("startup (hd --version)", "hd", median(starts), "ms", spread(starts));

    // ---- cold add of real trees, beside restic, git and the hashing limit ----
    const trees: { name: string; path: string; tools: Tool[] }[] = [];
    const app = await appTree(quick ? "quick" : "full", log);
    const all = [TOOLS.hd, TOOLS.restic, TOOLS.git, TOOLS.b3sum];
    if (app) {
      trees.push({ name: `node_modules (${quick ? "small" : "real"} app)`, path: app, tools: all });
    }
    if (!quick) {
      trees.push({
        name: "/usr/share",
        path: "/usr/share",
        tools: [TOOLS.hd, TOOLS.restic, TOOLS.b3sum],
      });
    }
    for (const extra of (Deno.env.get("HD_BENCH_TREES") ?? "").split(",").filter(Boolean)) {
      trees.push({ name: extra, path: extra, tools: all });
    }
    for (const t of trees) {
      const { files, bytes } = await treeStats(t.path);
      const mb = bytes / 1e6;
      log(`cold add ${t.name}: ${files} files, ${mb.toFixed(1)} MB, ${rounds} rounds`);
      const load0 = loadavg();
      const runs = await coldRounds(t.path, t.tools, rounds, workDir);
      const hdMs = median(runs.get(TOOLS.hd)!.map((r) => r.ms));
      const resticMs = median(runs.get(TOOLS.restic)!.map((r) => r.ms));
      for (const tool of t.tools) {
        const ms = runs.get(tool)!.map((r) => r.ms);
        const rss = runs.get(tool)!.map((r) => r.rssKiB / 1024);
        row(`cold add ${t.name}`, tool.name, median(ms), "ms", {
          ...spread(ms),
          rounds,
          files,
          MB: +mb.toFixed(1),
          MB_per_s: +(mb / (median(ms) / 1000)).toFixed(1),
          hd_over_this: +(hdMs / median(ms)).toFixed(2),
          peak_rss_MiB: tool === TOOLS.b3sum ? undefined : spread(rss),
          loadavg: [load0, loadavg()],
        });
      }
      log(`  hd/restic ${(hdMs / resticMs).toFixed(2)}`);
    }

    // ---- peak RSS of a cold add by tree size ----
    for (const n of quick ? [1_000, 10_000] : [1_000, 10_000, 100_000]) {
      const tree = `${workDir}/rss${n}`;
      syntheticTree(tree, n);
      // 100k files: 2 rounds of hd and restic, 1 of git (14 s a round; the run must stay short).
      const big = n >= 100_000;
      const rssRounds = big ? Math.min(rounds, 2) : rounds;
      const load0 = loadavg();
      const runs = await coldRounds(
        tree,
        big ? [TOOLS.hd, TOOLS.restic] : [TOOLS.hd, TOOLS.restic, TOOLS.git],
        rssRounds,
        workDir,
      );
      if (big) {
        runs.set(TOOLS.git, (await coldRounds(tree, [TOOLS.git], 1, workDir)).get(TOOLS.git)!);
      }
      for (const [tool, rs] of runs) {
        const rss = rs.map((r) => r.rssKiB / 1024);
        const ms = rs.map((r) => r.ms);
        row(`peak RSS, cold add of ${n / 1000}k synthetic files`, tool.name, median(rss), "MiB", {
          ...spread(rss, 1),
          rounds: rs.length,
          ms: spread(ms),
          loadavg: [load0, loadavg()],
        });
      }
      Deno.removeSync(tree, { recursive: true });
    }

    // ---- the 10,000-file tree: no-change re-scan, one-file edit ----
    const tree = `${workDir}/tree10k`;
    syntheticTree(tree, 10_000);
    const store = `${workDir}/store10k`;
    const hdAdd = () => timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", store, tree]);
    await hdAdd();
    await hdAdd(); // the stat cache is saved and trusted (mtimes are in the past)
    const gdir = `${workDir}/git10k`;
    await timeCmd("git", ["init", "-q", "--bare", gdir]);
    const git = (...a: string[]) => ["--git-dir", gdir, "--work-tree", tree, ...a];
    const gitEnv = {
      GIT_AUTHOR_NAME: "b",
      GIT_AUTHOR_EMAIL: "b@b",
      GIT_COMMITTER_NAME: "b",
      GIT_COMMITTER_EMAIL: "b@b",
    };
    await timeCmd("git", git("add", "-A"));
    await timeCmd("git", git("commit", "-q", "-m", "bench"), { env: gitEnv });
    await timeCmd("git", git("update-index", "--refresh"));
    await timeCmd("git", git("status", "--porcelain")); // index refreshed and written
    const hdScan: number[] = [];
    const gitScan: number[] = [];
    let load0 = loadavg();
    for (let i = 0; i < rounds + 3; i++) {
      hdScan.push(await hdAdd());
      gitScan.push(await timeCmd("git", git("status", "--porcelain")));
    }
    const scanCase = "no-change re-scan 10k files (CLI wall time; git: committed, index refreshed)";
    row(scanCase, "hd cas add", median(hdScan), "ms", {
      ...spread(hdScan),
      loadavg: [load0, loadavg()],
    });
    row(scanCase, "git status", median(gitScan), "ms", {
      ...spread(gitScan),
      loadavg: [load0, loadavg()],
    });

    // One-file edit → new root, through the CLI on both sides (each pays its process starts).
    const editCli: number[] = [];
    const gitEdit: number[] = [];
    load0 = loadavg();
    for (let i = 0; i < rounds + 3; i++) {
      const rel = `node_modules/pkg${i % 400}/lib/file${400 + (i % 400)}.js`;
      Deno.writeTextFileSync(`${tree}/${rel}`, `// edit ${i}\n`, { append: true });
      editCli.push(await hdAdd());
      Deno.writeTextFileSync(`${tree}/${rel}`, `// edit ${i} again\n`, { append: true });
      gitEdit.push(
        await timeCmd("sh", [
          "-c",
          `git ${git("add", rel).join(" ")} && git ${git("write-tree").join(" ")}`,
        ]),
      );
    }
    const editCase = "one-file edit to new root, CLI (hd cas add re-scan vs git add + write-tree)";
    row(editCase, "hd cas add", median(editCli), "ms", {
      ...spread(editCli),
      loadavg: [load0, loadavg()],
    });
    row(editCase, "git add+write-tree", median(gitEdit), "ms", {
      ...spread(gitEdit),
      loadavg: [load0, loadavg()],
    });

    // In process (what a running watcher pays after it has the path: no process start, no walk).
    const s = Store.open(store);
    const first = ingestTree(s, tree, { cache: StatCache.empty(s) });
    const t = first.tree;
    const editMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const rel = `node_modules/pkg${(i * 37) % 400}/lib/file${(i * 37) % 400 + 400}.js`;
      Deno.writeTextFileSync(`${tree}/${rel}`, `// edit ${i}\n`, { append: true });
      const t0 = performance.now();
      t.setFile(rel, ingestFile(s, `${tree}/${rel}`, Deno.lstatSync(`${tree}/${rel}`)));
      t.commit(s);
      editMs.push(performance.now() - t0);
    }
    const inproc = "one-file edit to new root, in process (ingest 1 file + rehash ancestors)";
    row(inproc, "hd", median(editMs), "ms", { p95: percentile(editMs, 95), ...spread(editMs, 2) });

    // ---- store growth after editing 1% of the files ----
    const g = `${workDir}/growth`;
    syntheticTree(`${g}/tree`, 10_000);
    const gstore = `${g}/store`;
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", gstore, `${g}/tree`]);
    const rrepo = `${g}/restic`;
    const renv = { ...RESTIC_ENV, RESTIC_CACHE_DIR: `${g}/restic-cache` };
    await timeCmd("restic", ["init", "-q", "-r", rrepo], { env: renv });
    await timeCmd("restic", ["backup", "-q", "-r", rrepo, `${g}/tree`], { env: renv });
    const hd0 = await duBytes(gstore);
    const r0 = await duBytes(rrepo);
    for (let i = 0; i < 10_000; i += 100) {
      const dir = `${g}/tree/node_modules/pkg${i % 400}/${i % 3 ? "lib" : "dist"}`;
      const p = `${dir}/file${i}.${i % 10 === 0 ? "bin" : "js"}`;
      Deno.writeTextFileSync(p, `// edited\n`, { append: true });
    }
    await timeCmd(HD[0], [...HD.slice(1), "cas", "add", "--store", gstore, `${g}/tree`]);
    await timeCmd("restic", ["backup", "-q", "-r", rrepo, `${g}/tree`], { env: renv });
    const growth = "store growth after editing 1% of 10k files";
    row(growth, "hd", (await duBytes(gstore)) - hd0, "bytes", { before: hd0 });
    row(growth, "restic", (await duBytes(rrepo)) - r0, "bytes", { before: r0 });
    return rows;
  },
};

if (import.meta.main) {
  const { runAloneTable } = await import("./lib.ts");
  await runAloneTable(bench, "hd-bench-cas-");
}
