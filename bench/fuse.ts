/**
 * FUSE projection bench: `hd mount` (lazy from the CAS, libfuse3's low-level API through Deno FFI)
 * beside `squashfuse_ll` (the same low-level API, in C) serving a `mksquashfs` image of the same
 * tree: an installed node_modules of a real app (`npm install express typescript eslint webpack`,
 * cached under /var/tmp/hd-bench-trees/fuse-tree; a synthetic node_modules-shaped tree when npm is
 * unreachable, marked in `extra`).
 *
 * Same caching on both sides: squashfuse_ll answers with entry/attr timeouts of DBL_MAX and
 * keep_cache; hd's read-only mount with 86400 s timeouts and keep_cache (no open: the kernel keeps
 * the page cache). "Cold" means the page cache dropped and the server freshly mounted.
 *
 * hd is measured two ways: "hd", a mount of a store whose mount server runs (it has served the
 * tree once, untimed, before the rounds, and lingers between them: what a user has after a first
 * mount), and "hd (new server)", a second store with HD_MOUNT_LINGER=0, where every mount starts
 * its own process (what the first mount of a store costs).
 *
 * Rounds rotate the order of the tools; each row is the median over rounds with min–max, the
 * samples and the load average in `extra`. Measured:
 * mount → serving (the mount command started until a listing of the mount point answers; warm
 * caches) beside hd's start-up floors in the same round (`hd --version`, which loads nothing, and
 * `hd mount` listing mounts, which opens the store), the server's RSS once serving (VmRSS), cold find,
 * cold cat of every file, cold stat median and p99 over every file, and the server's peak RSS
 * (VmHWM after the cold cat).
 * @module
 */
import { type Bench, type BenchRow, dropCaches, hdAt, median, percentile, sh } from "./lib.ts";

/** Where the real tree is installed (shared across runs; `fuse-tree` avoids other benches' dirs). */
const TREE_CACHE = "/var/tmp/hd-bench-trees/fuse-tree";
const TREE_PACKAGES = ["express", "typescript", "eslint", "webpack"];

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const WORDS = [
  "function",
  "return",
  "const",
  "module",
  "exports",
  "require",
  "this",
  "value",
  "options",
  "callback",
  "undefined",
  "prototype",
  "length",
  "error",
  "result",
  "object",
  "string",
  "number",
  "if",
  "else",
  "for",
  "while",
  "new",
  "typeof",
  "null",
  "true",
  "false",
  "async",
  "await",
  "import",
];

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13, x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5, x >>>= 0;
    return x / 4294967296;
  };
}

/** A node_modules-shaped tree: packages with package.json, README, lib/ and nested deps. */
function makeNodeModules(dir: string, files: number): { files: number; bytes: number } {
  const rnd = xorshift(42);
  const enc = new TextEncoder();
  let made = 0;
  let bytes = 0;
  let pkg = 0;
  while (made < files) {
    const scoped = rnd() < 0.15;
    const name = scoped ? `@scope${pkg % 40}/pkg-${pkg}` : `pkg-${pkg}`;
    const base = `${dir}/${name}`;
    const n = 3 + Math.floor(rnd() * 30);
    for (let i = 0; i < n && made < files; i++) {
      const sub = i === 0
        ? "package.json"
        : i === 1
        ? "README.md"
        : rnd() < 0.3
        ? `lib/internal/m${i}.js`
        : rnd() < 0.2
        ? `dist/m${i}.d.ts`
        : `lib/m${i}.js`;
      const size = Math.floor(120 * 2 ** (rnd() * 10));
      const words: string[] = [];
      let len = 0;
      while (len < size) {
        const w = WORDS[Math.floor(rnd() * WORDS.length)] +
          (rnd() < 0.3 ? Math.floor(rnd() * 1000).toString(36) : "");
        words.push(w);
        len += w.length + 1;
        if (rnd() < 0.1) (words.push(";\n"), len += 2);
      }
      const text = enc.encode(words.join(" "));
      const path = `${base}/${sub}`;
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      Deno.writeFileSync(path, text);
      made++;
      bytes += text.length;
    }
    pkg++;
  }
  return { files: made, bytes };
}

/**
 * hd on `store`; its mount server lingers 10 minutes between unmount and mount (bench/run.ts sets
 * HD_MOUNT_LINGER=0 for every other bench; this one stops its servers with `hd unmount --all`).
 */
const hdCli = (args: string[], store: string) =>
  hdAt(`${REPO}/cli.ts`, args, store, { HD_MOUNT_LINGER: "600" });

async function timeSh(line: string): Promise<number> {
  const t = performance.now();
  await sh(line);
  return performance.now() - t;
}

/** The 1-minute load average (from /proc/loadavg), or -1. */
function loadavg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return -1;
  }
}

/** The real node_modules (installed once into {@link TREE_CACHE}), or null when npm fails. */
async function realTree(log: (s: string) => void): Promise<string | null> {
  const nm = `${TREE_CACHE}/node_modules`;
  try {
    if (Deno.statSync(`${TREE_CACHE}/.complete`).isFile) return nm;
  } catch { /* not yet */ }
  log(`npm install ${TREE_PACKAGES.join(" ")} into ${TREE_CACHE}`);
  try {
    Deno.mkdirSync(TREE_CACHE, { recursive: true });
    Deno.writeTextFileSync(
      `${TREE_CACHE}/package.json`,
      JSON.stringify({ name: "fuse-tree", version: "1.0.0", private: true }),
    );
    await sh(`npm install --no-audit --no-fund ${TREE_PACKAGES.join(" ")}`, { cwd: TREE_CACHE });
    Deno.writeTextFileSync(`${TREE_CACHE}/.complete`, "");
    return nm;
  } catch (e) {
    log(`npm install failed (${(e as Error).message.slice(0, 200)}): using a synthetic tree`);
    return null;
  }
}

/** Peak RSS (VmHWM) of `pid` in MiB, or NaN. */
function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Pid of the process whose argv is exactly `argv` (the squashfuse_ll this bench started). */
function pidOfArgv(argv: string[]): number | null {
  const want = argv.join("\0");
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cl = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replace(/\0$/, "");
      if (cl === want) return Number(e.name);
    } catch { /* gone */ }
  }
  return null;
}

type Tool = "hd" | "squashfuse_ll";
/** The main rounds' contenders: hd with its store's mount server running, hd starting one. */
type MainTool = Tool | "hd (new server)";

/** RSS (VmRSS) of `pid` in MiB, or NaN. */
function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * A walk of a big tree: 100k entries (1,000 directories of 99 one-line files; 20k entries with --quick)
 * over hd and squashfuse_ll, in alternating order: each server's RSS after `find`, and for hd its
 * live inodes and V8 heap after the walk and after the kernel forgot (drop_caches 2).
 */
async function bigWalk(
  workDir: string,
  quick: boolean,
  log: (s: string) => void,
): Promise<{ rows: [string, string, number, string, number[]][]; extra: Record<string, unknown> }> {
  const dirs = quick ? 200 : 1000;
  const src = `${workDir}/big`;
  const enc = new TextEncoder();
  for (let d = 0; d < dirs; d++) {
    const p = `${src}/p${Math.floor(d / 50)}/d${d}`;
    Deno.mkdirSync(p, { recursive: true });
    for (let f = 0; f < 99; f++) {
      Deno.writeFileSync(`${p}/f${f}.js`, enc.encode(`module.exports = ${d * 100 + f};\n`));
    }
  }
  const store = `${workDir}/big-store`;
  log(`big walk: hd cas add (${dirs * 100} entries)`);
  const root = (await hdCli(["cas", "add", "--no-cache", src], store)).trim().split("\n")[0];
  const img = `${workDir}/big.sqfs`;
  // uncompressed, no duplicate search: 100k tiny files of a few sizes took minutes otherwise
  await sh(
    `mksquashfs ${src} ${img} -noappend -quiet -no-progress -noI -noD -noF -noX -no-duplicates`,
  );
  const mnt = `${workDir}/mnt-big`;
  Deno.mkdirSync(mnt);
  const { Store } = await import("../src/cas/store.ts");
  const { requestMount } = await import("../src/mount/manager.ts");
  const stats = async () => {
    const r = await requestMount(Store.open(store), mnt, { op: "stats" });
    const s = r.stats as { live?: number; evicted?: number };
    const m = r.memory as { heapUsed: number } | undefined;
    return { live: s.live ?? NaN, heap: m ? m.heapUsed / 1048576 : NaN };
  };
  const rows: [string, string, number, string][] = [];
  const entries = dirs * 100 + Math.ceil(dirs / 50) + 1;
  const rounds = quick ? 1 : 2;
  const loads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    loads.push(loadavg());
    for (const t of (r % 2 ? ["squashfuse_ll", "hd"] : ["hd", "squashfuse_ll"]) as Tool[]) {
      let pid: number | null;
      if (t === "hd") pid = JSON.parse(await hdCli(["mount", root, mnt, "--json"], store)).pid;
      else {
        await sh(`squashfuse_ll ${img} ${mnt}`);
        pid = pidOfArgv(["squashfuse_ll", img, mnt]);
      }
      try {
        await sh(`find ${mnt} | wc -l`);
        rows.push(["big-tree walk: RSS after find", t, rssMiB(pid!), "MiB"]);
        if (t === "hd") {
          const a = await stats();
          rows.push(["big-tree walk: live inodes after find", t, a.live, "inodes"]);
          rows.push(["big-tree walk: heap after find", t, a.heap, "MiB"]);
          await sh("sync && echo 2 > /proc/sys/vm/drop_caches");
          await new Promise((res) => setTimeout(res, 500));
          const b = await stats();
          rows.push(["big-tree walk: live inodes after forget", t, b.live, "inodes"]);
          rows.push(["big-tree walk: heap after forget", t, b.heap, "MiB"]);
          rows.push(["big-tree walk: RSS after forget", t, rssMiB(pid!), "MiB"]);
        }
      } finally {
        // (--all: the store's mount server exits too, not after its linger)
        if (t === "hd") await hdCli(["unmount", "--all"], store).catch(() => {});
        else await sh(`fusermount3 -u ${mnt}`).catch(() => {});
      }
    }
  }
  // one row per case and tool: the median over rounds
  const by = new Map<string, [string, string, number[], string]>();
  for (const [c, t, v, u] of rows) {
    const k = `${c}\0${t}`;
    if (!by.has(k)) by.set(k, [c, t, [], u]);
    by.get(k)![2].push(v);
  }
  return {
    rows: [...by.values()].map(([c, t, vs, u]) => [c, t, median(vs), u, vs]),
    extra: { entries, rounds, loadavg: loads, inodeCap: 65_536 },
  };
}

/** The FUSE bench. */
export const bench: Bench = {
  name: "fuse",
  async run({ workDir, quick, log }) {
    for (const c of ["mksquashfs", "squashfuse_ll", "fusermount3"]) {
      try {
        await sh(`command -v ${c}`);
      } catch {
        throw new Error(`needs ${c} (apt-get install squashfs-tools squashfuse fuse3)`);
      }
    }
    const rows: BenchRow[] = [];
    let tree = await realTree(log);
    const synthetic = tree === null;
    if (!tree) {
      tree = `${workDir}/tree/node_modules`;
      makeNodeModules(tree, quick ? 2000 : 8000);
    }
    const count = (await sh(`find ${tree} -type f | wc -l`)).trim();
    const bytes = (await sh(`du -sb ${tree} | cut -f1`)).trim();
    const store = `${workDir}/store`;
    // "hd (new server)" mounts from a second store whose mount server exits with its mount
    // (HD_MOUNT_LINGER=0): every mount there starts a process, as the first mount of a store does
    const store2 = `${workDir}/store2`;
    const NEW_SERVER = { HD_MOUNT_LINGER: "0" };
    log(`hd cas add ${tree} (${count} files), twice`);
    const root = (await hdCli(["cas", "add", tree], store)).trim().split("\n")[0];
    await hdAt(`${REPO}/cli.ts`, ["cas", "add", tree], store2, NEW_SERVER);
    log("mksquashfs");
    const img = `${workDir}/tree.sqfs`;
    await sh(`mksquashfs ${tree} ${img} -noappend -quiet -no-progress`);
    const mnt: Record<MainTool, string> = {
      hd: `${workDir}/mnt-hd`,
      "hd (new server)": `${workDir}/mnt-hd-new`,
      squashfuse_ll: `${workDir}/mnt-sq`,
    };
    for (const m of Object.values(mnt)) Deno.mkdirSync(m);
    const sqArgv = ["squashfuse_ll", img, mnt.squashfuse_ll];
    const pid: Record<MainTool, number | null> = {
      hd: null,
      "hd (new server)": null,
      squashfuse_ll: null,
    };
    const hdOf = (t: MainTool, args: string[]) =>
      t === "hd" ? hdCli(args, store) : hdAt(`${REPO}/cli.ts`, args, store2, NEW_SERVER);
    /** Mounts `t` and returns the ms until a listing of the mount point answers. */
    const mount = async (t: MainTool): Promise<number> => {
      const t0 = performance.now();
      if (t !== "squashfuse_ll") {
        const out = await hdOf(t, ["mount", root, mnt[t], "--json"]);
        pid[t] = JSON.parse(out).pid;
      } else await sh(sqArgv.join(" "));
      for (const _ of Deno.readDirSync(mnt[t])) break;
      const ms = performance.now() - t0;
      if (t === "squashfuse_ll") pid.squashfuse_ll = pidOfArgv(sqArgv);
      return ms;
    };
    const unmount = async (t: MainTool) => {
      try {
        if (t !== "squashfuse_ll") await hdOf(t, ["unmount", mnt[t]]);
        else await sh(`fusermount3 -u ${mnt.squashfuse_ll}`);
      } catch { /* not mounted */ }
      pid[t] = null;
    };
    /** Unmounts `t`, drops the page cache and mounts it again: the next access is cold. */
    const fresh = async (t: MainTool): Promise<number> => {
      await unmount(t);
      await dropCaches();
      return await mount(t);
    };
    const samples = new Map<string, Record<string, number[]>>();
    const loads: number[] = [];
    const add = (c: string, tool: string, v: number) => {
      const m = samples.get(c) ?? {};
      (m[tool] ??= []).push(v);
      samples.set(c, m);
    };
    const files = (await sh(`cd ${tree} && find . -type f`)).trim().split("\n");
    const units: Record<string, string> = {
      "mount → serving": "ms",
      "cold find": "ms",
      "cold cat all files": "ms",
      "cold stat median": "µs",
      "cold stat p99": "µs",
      "server peak RSS": "MiB",
      "server RSS once serving": "MiB",
    };
    // 9 rounds: cold finds here swing 2-3x from round to round on every side alike (70–190 ms for
    // hd, 30–50 for squashfuse_ll in a 5-round run); the median of 5 followed the swing
    const rounds = quick ? 2 : 9;
    try {
      // The store's mount server as a user has it after a first mount: it has served (a find and
      // a cat, untimed) and runs on (it lingers between the rounds' unmount and mount).
      await mount("hd");
      await sh(
        `find ${mnt.hd} >/dev/null && cd ${mnt.hd} && find . -type f -print0 | xargs -0 cat >/dev/null`,
      );
      await unmount("hd");
      for (let r = 0; r < rounds; r++) {
        loads.push(loadavg());
        const tools: MainTool[] = ["hd", "hd (new server)", "squashfuse_ll"];
        const order = tools.map((_, i) => tools[(i + r) % tools.length]);
        // hd's start-up floors, beside the mounts of this round: a command that loads nothing,
        // and one that opens the store and lists its mounts (`hd mount` without arguments).
        const v0 = performance.now();
        await hdCli(["--version"], store);
        add("mount → serving", "hd --version", performance.now() - v0);
        const l0 = performance.now();
        await hdCli(["mount"], store);
        add("mount → serving", "hd mount (list)", performance.now() - l0);
        for (const t of order) {
          // Start-up with warm caches, like `hd --version`; every later phase starts cold.
          await unmount(t);
          add("mount → serving", t, await mount(t));
          if (pid[t]) add("server RSS once serving", t, rssMiB(pid[t]!));
          await fresh(t);
          add("cold find", t, await timeSh(`find ${mnt[t]} | wc -l`));
          await fresh(t);
          add(
            "cold cat all files",
            t,
            await timeSh(`cd ${mnt[t]} && find . -type f -print0 | xargs -0 cat > /dev/null`),
          );
          if (pid[t]) add("server peak RSS", t, peakRssMiB(pid[t]!));
          await fresh(t);
          const ts: number[] = [];
          for (const p of files) {
            const t1 = performance.now();
            Deno.statSync(`${mnt[t]}/${p}`);
            ts.push((performance.now() - t1) * 1000);
          }
          add("cold stat median", t, median(ts));
          add("cold stat p99", t, percentile(ts, 99));
          await unmount(t);
        }
        log(`round ${r + 1}/${rounds} done (load ${loads[loads.length - 1]})`);
      }
    } finally {
      await unmount("hd");
      await unmount("hd (new server)");
      await unmount("squashfuse_ll");
      // the store's mount server lingers after its last unmount: stopped here
      await hdCli(["unmount", "--all"], store).catch(() => {});
    }
    // Server memory on a large tree: a full walk (the kernel then holds every inode), then the
    // kernel forgets (drop_caches 2 evicts its dentries and inodes, and FUSE sends FORGETs): hd
    // unloads forgotten directories down to its inode cap.
    const big = await bigWalk(workDir, quick, log);
    for (const [c, tool, v, unit, xs] of big.rows) {
      const spread = { min: Math.min(...xs), max: Math.max(...xs), samples: xs };
      rows.push({
        bench: "fuse",
        case: c,
        tool,
        value: v,
        unit,
        extra: { ...big.extra, ...spread },
      });
      log(`${c.padEnd(22)} ${tool.padEnd(14)} ${v.toFixed(1)} ${unit}`);
    }
    const extraBase = {
      files: Number(count),
      bytes: Number(bytes),
      tree: synthetic ? "synthetic node_modules" : `npm install ${TREE_PACKAGES.join(" ")}`,
      rounds,
      loadavg: loads,
      caching: "entry/attr timeouts: hd 86400 s, squashfuse_ll DBL_MAX; keep_cache on both",
    };
    const med = new Map<string, Record<string, number>>();
    for (const [c, byTool] of samples) {
      for (const [tool, xs] of Object.entries(byTool)) {
        const v = median(xs);
        med.set(c, { ...med.get(c), [tool]: v });
        rows.push({
          bench: "fuse",
          case: c,
          tool,
          value: v,
          unit: units[c],
          extra: {
            ...extraBase,
            min: Math.min(...xs),
            max: Math.max(...xs),
            samples: xs.map((x) => Math.round(x * 100) / 100),
          },
        });
        log(
          `${c.padEnd(22)} ${tool.padEnd(14)} ${v.toFixed(2)} ${units[c]} ` +
            `(${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`,
        );
      }
    }
    for (const [c, v] of med) {
      for (const h of ["hd", "hd (new server)"]) {
        if (!v[h]) continue;
        const ratio = v[h] / v.squashfuse_ll;
        rows.push({ bench: "fuse", case: c, tool: `${h}/squashfuse_ll`, value: ratio, unit: "x" });
        log(`${c.padEnd(22)} ${h} is ${ratio.toFixed(2)}x squashfuse_ll`);
        for (const floor of ["hd --version", "hd mount (list)"]) {
          if (!v[floor]) continue;
          const r2 = v[h] / v[floor];
          rows.push({ bench: "fuse", case: c, tool: `${h}/${floor}`, value: r2, unit: "x" });
          log(`${c.padEnd(22)} ${h} is ${r2.toFixed(2)}x ${floor}`);
        }
      }
    }
    return rows;
  },
};

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const workDir = Deno.makeTempDirSync({ prefix: "hd-bench-fuse-" });
  try {
    const rows = await bench.run({ workDir, quick, log: (s) => console.error(`[fuse] ${s}`) });
    console.log(JSON.stringify(rows, null, 1));
  } finally {
    await sh(`rm -rf ${workDir}`).catch(() => {});
  }
}
