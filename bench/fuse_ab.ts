/**
 * A/B of hd's FUSE server between checkouts, beside squashfuse_ll: cold find, cold stat (median
 * and p99 over every file) and cold cat of every file, with the requests the kernel sent per kind
 * during the cold find (the server's counters, from the mount's `stats` control request). Not a
 * bench module: a tool for reading where the per-request cost goes, run by hand.
 *
 *   deno run -A bench/fuse_ab.ts [--rounds 7] [--tree DIR] [--cases find,stat,cat] [--profile]
 *     [--cli PATH]…
 *
 * Every `--cli` is the cli.ts of a checkout (default: this one); the rounds alternate them and
 * squashfuse_ll (the order reversed in odd rounds). "Cold": unmounted, page cache dropped,
 * mounted again. Each line is the median over rounds with min–max and the load averages.
 * With --profile the servers run with HD_FUSE_PROFILE=1 and the milliseconds spent in each op during
 * a cold find are printed too (two clock reads per request). The tree defaults to bench/fuse.ts's
 * installed node_modules; a temporary store, image and
 * mount points are made and removed.
 * @module
 */
import { abOptions, dropCaches, hdAt, loadavg, median, percentile, sh } from "./lib.ts";

// Every mount starts its own server (the start-up these read) and none outlives the script, unless
// HD_MOUNT_LINGER is set (then a store's mount server runs on between the rounds: docs/mount.md).
Deno.env.set("HD_MOUNT_LINGER", Deno.env.get("HD_MOUNT_LINGER") ?? "0");

const args = Deno.args;
const { opt, clis } = abOptions(args);
const rounds = Number(opt("--rounds", "7"));
const tree = opt("--tree", "/var/tmp/hd-bench-trees/fuse-tree/node_modules");
const cases = opt("--cases", "find,stat,cat").split(",");
const profile = args.includes("--profile");

const work = Deno.makeTempDirSync({ prefix: "hd-fuse-ab-" });
const store = `${work}/store`;

const hd = (cli: string, a: string[]) =>
  hdAt(cli, a, store, profile ? { HD_FUSE_PROFILE: "1" } : {});

const root = (await hd(clis[0], ["cas", "add", tree])).trim().split("\n")[0];
const img = `${work}/tree.sqfs`;
await sh(`mksquashfs ${tree} ${img} -noappend -quiet -no-progress`);
const files = (await sh(`cd ${tree} && find . -type f`)).trim().split("\n");
const tools = [...clis.map((_, i) => `hd#${i}`), "squashfuse_ll"];
const mnt = (t: string) => `${work}/mnt-${t.replace("#", "")}`;
for (const t of tools) Deno.mkdirSync(mnt(t));

async function mount(t: string): Promise<void> {
  if (t === "squashfuse_ll") await sh(`squashfuse_ll ${img} ${mnt(t)}`);
  else await hd(clis[Number(t.slice(3))], ["mount", root, mnt(t), "--json"]);
}
async function unmount(t: string): Promise<void> {
  try {
    if (t === "squashfuse_ll") await sh(`fusermount3 -u ${mnt(t)}`);
    else await hd(clis[Number(t.slice(3))], ["unmount", mnt(t)]);
  } catch { /* not mounted */ }
}
async function fresh(t: string): Promise<void> {
  await unmount(t);
  await dropCaches();
  const t0 = performance.now();
  await mount(t);
  add(`mount (cold) ms\0${t}`, performance.now() - t0);
}
async function ops(t: string): Promise<Record<string, unknown> | null> {
  if (t === "squashfuse_ll") return null;
  const { Store } = await import("../src/cas/store.ts");
  const { requestMount } = await import("../src/mount/manager.ts");
  const r = await requestMount(Store.open(store), mnt(t), { op: "stats" });
  const ms = r.opMs as Record<string, number> | undefined;
  const round = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
  return { requests: r.ops, ...(ms ? { ms: round(ms) } : {}) };
}
async function timed(line: string): Promise<number> {
  const t0 = performance.now();
  await sh(line);
  return performance.now() - t0;
}

const samples = new Map<string, number[]>();
const add = (k: string, v: number) => samples.set(k, [...(samples.get(k) ?? []), v]);
const loads: number[] = [];
const counts = new Map<string, Record<string, unknown>>();
try {
  for (let r = 0; r < rounds; r++) {
    loads.push(loadavg());
    const order = r % 2 ? [...tools].reverse() : tools;
    for (const t of order) {
      if (cases.includes("find")) {
        await fresh(t);
        add(`cold find\0${t}`, await timed(`find ${mnt(t)} | wc -l`));
        const o = await ops(t);
        if (o && !counts.has(t)) counts.set(t, o);
      }
      if (cases.includes("stat")) {
        await fresh(t);
        const ts: number[] = [];
        for (const p of files) {
          const t1 = performance.now();
          Deno.statSync(`${mnt(t)}/${p}`);
          ts.push((performance.now() - t1) * 1000);
        }
        add(`cold stat median µs\0${t}`, median(ts));
        add(`cold stat p99 µs\0${t}`, percentile(ts, 99));
      }
      if (cases.includes("cat")) {
        await fresh(t);
        add(
          `cold cat all ms\0${t}`,
          await timed(`cd ${mnt(t)} && find . -type f -print0 | xargs -0 cat > /dev/null`),
        );
      }
      await unmount(t);
    }
    console.error(`round ${r + 1}/${rounds} (load ${loads.at(-1)})`);
  }
} finally {
  for (const t of tools) await unmount(t);
  await sh(`rm -rf ${work}`).catch(() => {});
}
const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
console.log(`files ${files.length}, rounds ${rounds}, load ${loads.join(" ")}`);
clis.forEach((c, i) => console.log(`hd#${i} = ${c}`));
for (const [k, xs] of samples) {
  const [c, t] = k.split("\0");
  console.log(
    `${c.padEnd(20)} ${t.padEnd(14)} ${f(median(xs)).padStart(7)} ` +
      `(${f(Math.min(...xs))}–${f(Math.max(...xs))})`,
  );
}
for (const [t, o] of counts) console.log(`requests during cold find, ${t}: ${JSON.stringify(o)}`);
