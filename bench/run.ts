/**
 * `deno task bench [--only NAME,…] [--quick]`: runs every bench module and writes all rows to
 * bench/out/results.json, printing a table of hd beside its peers. A run that docs/bench.md is made
 * from is copied to bench/results/<date>.json and rendered by scripts/benchmd.ts.
 * @module
 */
import type { Bench, BenchRow } from "./lib.ts";

const MODULES = [
  "cas",
  "spec",
  "loop",
  "warm",
  "steps",
  "fuse",
  "oci",
  "sandbox",
  "lazy",
  "ingest",
  "export",
  "remote",
  "layers",
  "compose",
];

const only = (() => {
  const i = Deno.args.indexOf("--only");
  return i >= 0 ? new Set(Deno.args[i + 1].split(",")) : null;
})();
const quick = Deno.args.includes("--quick");
const outDir = new URL("./out/", import.meta.url).pathname;
Deno.mkdirSync(outDir, { recursive: true });
const workDir = Deno.makeTempDirSync({ prefix: "hd-bench-" });
// the npm that steps run writes its debug logs here, not into ~/.npm/_logs (as scripts/test.sh)
Deno.mkdirSync(`${workDir}/npm-logs`);
Deno.env.set("npm_config_logs_dir", `${workDir}/npm-logs`);
// A store's mount server exits with its last mount unless a bench says otherwise (bench/fuse.ts
// measures one that runs on, and stops it): the lazy environments' cold ups start their own, and
// no server outlives the run.
if (Deno.env.get("HD_MOUNT_LINGER") === undefined) Deno.env.set("HD_MOUNT_LINGER", "0");
// Likewise no `hd down` leaves a spare supervisor (its start would fall on the next measurement,
// of either side) but in bench/loop.ts's no-change up rounds, which wait for it and measure it.
if (Deno.env.get("HD_SPARE_LINGER") === undefined) Deno.env.set("HD_SPARE_LINGER", "0");
const rows: BenchRow[] = [];
const errors: { bench: string; error: string }[] = [];
/** Per module: when it started, how long it took, the 1-minute load average before and after. */
const modules: {
  bench: string;
  started: string;
  seconds: number;
  load: [number, number];
  /** How long the machine took to settle before the module ({@link settle}), and how idle it was. */
  settle: { ms: number; idlePct: number };
}[] = [];
const load1 = () => Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
const log = (s: string) => console.error(`[bench] ${s}`);

/** The share of CPU time idle over the next `ms` (all cores), from /proc/stat. */
async function idleShare(ms: number): Promise<number> {
  const read = () => {
    const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
      .map(Number);
    return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total > a.total ? (b.idle - a.idle) / (b.total - a.total) : 1;
}

/**
 * Lets the machine settle before a module: the previous one's dirty pages written out (`sync`),
 * then until a second passes with ≥ 90% of the CPU idle (at most 30 s). A module that starts while
 * the writeback of the one before (gigabytes, after cas) still runs measures that writeback too.
 */
async function settle(): Promise<{ ms: number; idlePct: number }> {
  const t0 = performance.now();
  await new Deno.Command("sync").output().catch(() => {});
  let idle = 0;
  while (performance.now() - t0 < 30_000) {
    idle = await idleShare(1000);
    if (idle >= 0.9) break;
  }
  return { ms: Math.round(performance.now() - t0), idlePct: Math.round(idle * 100) };
}

for (const name of MODULES) {
  if (only && !only.has(name)) continue;
  let mod: { bench: Bench };
  try {
    mod = await import(`./${name}.ts`);
  } catch (e) {
    errors.push({ bench: name, error: `not loaded: ${(e as Error).message.split("\n")[0]}` });
    continue;
  }
  const settled = await settle();
  log(`${name}: start (settled in ${settled.ms} ms, ${settled.idlePct}% idle)`);
  const started = new Date();
  const load0 = load1();
  const dir = `${workDir}/${name}`;
  Deno.mkdirSync(dir, { recursive: true });
  try {
    const got = await mod.bench.run({ workDir: dir, quick, log: (s) => log(`${name}: ${s}`) });
    rows.push(...got);
    for (const r of got) {
      console.log(
        `${r.bench.padEnd(5)} ${r.case.padEnd(48)} ${r.tool.padEnd(14)} ${
          (Math.round(r.value * 100) / 100).toString().padStart(10)
        } ${r.unit}`,
      );
    }
  } catch (e) {
    errors.push({ bench: name, error: (e as Error).stack ?? String(e) });
    log(`${name}: FAILED ${(e as Error).message}`);
  }
  modules.push({
    bench: name,
    started: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    load: [load0, load1()],
    settle: settled,
  });
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* mounts may linger; the bench module cleans up its own */ }
}

const doc = {
  when: new Date().toISOString(),
  machine: { cores: navigator.hardwareConcurrency, deno: Deno.version.deno, os: Deno.build.os },
  quick,
  modules,
  rows,
  errors,
};
const body = JSON.stringify(doc, null, 2) + "\n";
Deno.writeTextFileSync(`${outDir}results.json.tmp`, body);
Deno.renameSync(`${outDir}results.json.tmp`, `${outDir}results.json`);
console.log(`\nwrote ${outDir}results.json (${rows.length} rows, ${errors.length} errors)`);
for (const e of errors) console.error(`error in ${e.bench}: ${e.error.split("\n")[0]}`);
try {
  Deno.removeSync(workDir, { recursive: true });
} catch { /* ignore */ }
Deno.exit(errors.length ? 1 : 0);
