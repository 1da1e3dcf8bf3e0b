/**
 * Where `hd mount` spends its time until the mount point serves: runs `hd mount ROOT DIR` (the
 * background form, as a user types it) with HD_TRACE set, then lists the mount point, and prints
 * the median time of every trace label (both processes: the CLI and the server it starts)
 * relative to the moment the CLI was spawned, beside the end-to-end time (spawn until the
 * listing answered) and, in the same rounds, that of `hd --version` (the start-up floor). Not a
 * bench module: a tool for reading the start-up, run by hand.
 *
 * With several `--cli` paths (cli.ts of different checkouts) it alternates them (A B A B …) and
 * prints one breakdown each: an A/B of two versions under the same load.
 *
 *   deno run -A bench/mount_trace.ts [--rounds 10] [--tree DIR] [--cli PATH]…
 *
 * The tree defaults to this repository's src/ (small); pass --tree for a real one. A temporary
 * store and mount point are made and removed.
 * @module
 */
import { abOptions, hdAt, median } from "./lib.ts";

// Every mount starts its own server (the start-up these read) and none outlives the script, unless
// HD_MOUNT_LINGER is set (then a store's mount server runs on between the rounds: docs/mount.md).
Deno.env.set("HD_MOUNT_LINGER", Deno.env.get("HD_MOUNT_LINGER") ?? "0");

const args = Deno.args;
const { opt, clis } = abOptions(args);
const rounds = Number(opt("--rounds", "10"));
const tree = opt("--tree", new URL("../src", import.meta.url).pathname);

const work = Deno.makeTempDirSync({ prefix: "hd-mount-trace-" });
const store = `${work}/store`;
const mnt = `${work}/mnt`;
Deno.mkdirSync(mnt);

const hd = (cli: string, a: string[], env: Record<string, string> = {}) => hdAt(cli, a, store, env);

const root = (await hd(clis[0], ["cas", "add", tree])).trim().split("\n")[0];
/** CPU time (ms) process `pid` has run so far, over all its threads (/proc/PID/task/T/schedstat). */
function cpuMs(pid: string): number {
  let ns = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
  }
  return ns / 1e6;
}

/** Per cli: label → samples (ms after the spawn); "serving" is the end-to-end time. */
const samples = clis.map(() => new Map<string, number[]>());
const loads: number[] = [];
try {
  for (let r = 0; r < rounds; r++) {
    loads.push(Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]));
    const order = clis.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const c of order) {
      // the start-up floor of this checkout in the same round: a command that loads nothing
      const v0 = performance.timeOrigin + performance.now();
      await hd(clis[c], ["--version"]);
      const vms = performance.timeOrigin + performance.now() - v0;
      const tracePath = `${work}/trace`;
      try {
        Deno.removeSync(tracePath);
      } catch { /* first */ }
      const t0 = performance.timeOrigin + performance.now();
      const said = await hd(clis[c], ["mount", root, mnt], { HD_TRACE: tracePath });
      for (const _ of Deno.readDirSync(mnt)) break;
      const t1 = performance.timeOrigin + performance.now();
      // the server's CPU time so far (every thread: V8's compiler and GC threads too), which load
      // on the machine inflates far less than the wall times
      // the server's pid, as the CLI said it (the two processes' lines interleave in the trace)
      const serverPid = /pid (\d+)/.exec(said)?.[1];
      const cpu = serverPid ? cpuMs(serverPid) : null;
      const add = (label: string, ms: number) => {
        const m = samples[c];
        if (!m.has(label)) m.set(label, []);
        m.get(label)!.push(ms);
      };
      for (const line of Deno.readTextFileSync(tracePath).trim().split("\n")) {
        const [at, pid, ...rest] = line.split(" ");
        // the CLI's first line is "main mount ROOT DIR": drop the arguments
        const label = rest.join(" ").replace(/^(main mount).*?( --foreground.*)?$/, "$1$2")
          .replace(/ --log \S+/, "");
        add(`${pid === serverPid ? "server" : "cli"}: ${label}`, Number(at) - t0);
      }
      add("listing answered (end to end)", t1 - t0);
      if (cpu !== null) add("server CPU time until listed (all threads)", cpu);
      add("hd --version (same round, end to end)", vms);
      await hd(clis[c], ["unmount", mnt]);
    }
  }
} finally {
  await new Deno.Command("fusermount3", { args: ["-u", "-q", mnt], stderr: "null" }).output()
    .catch(() => {});
  Deno.removeSync(work, { recursive: true });
}
for (const [c, cli] of clis.entries()) {
  console.log(`\n${cli}  (${rounds} rounds, load ${Math.min(...loads)}–${Math.max(...loads)})`);
  const rows = [...samples[c]].map(([label, xs]) => ({ label, med: median(xs), xs }))
    .sort((a, b) => a.med - b.med);
  for (const { label, med, xs } of rows) {
    console.log(
      `${med.toFixed(1).padStart(7)} ms  (${Math.min(...xs).toFixed(0)}–${
        Math.max(...xs).toFixed(0)
      })  ${label}`,
    );
  }
}
