/**
 * Independent build steps side by side: a project with two host steps that each `sleep 2`, with
 * disjoint declared inputs and outputs, and one service. `hd up -d` from a changed input (both
 * steps must run) until it returns with the service ready, with `[options] jobs = 1` (one step at
 * a time: what `hd up` did before steps ran side by side) and without `jobs` (one per core).
 * Rounds alternate the two (A B A B); median and spread are reported, with the load average.
 * @module
 */
import { type Bench, type BenchRow, median, sh } from "./lib.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

function toml(jobs: number | null): string {
  return `[environment]
name = "steps-bench"

[build]
steps = [
  { run = "sleep 2; mkdir -p out-a", inputs = ["a.txt"], outputs = ["out-a"] },
  { run = "sleep 2; mkdir -p out-b", inputs = ["b.txt"], outputs = ["out-b"] },
]

[services.idle]
command = "exec sleep 600"
${jobs === null ? "" : `\n[options]\njobs = ${jobs}\n`}`;
}

function loadAvg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return NaN;
  }
}

/** The bench module (registered in bench/run.ts as "steps"). */
export const bench: Bench = {
  name: "steps",
  async run({ workDir, quick, log }): Promise<BenchRow[]> {
    const rounds = quick ? 3 : 5;
    const store = `${workDir}/store`;
    const cases = { "jobs = 1 (one at a time)": 1, "default jobs (cores)": null };
    const times: Record<string, number[]> = {};
    const loads: number[] = [];
    for (const name of Object.keys(cases)) {
      const dir = `${workDir}/${name.replace(/\W+/g, "-")}`;
      Deno.mkdirSync(dir, { recursive: true });
      Deno.writeTextFileSync(`${dir}/hd.toml`, toml(cases[name as keyof typeof cases]));
      times[name] = [];
    }
    const hd = (dir: string, args: string) =>
      sh(`HD_HOME=${store} deno run -A --quiet ${REPO}/cli.ts ${args} >/dev/null`, { cwd: dir });
    for (let i = 0; i < rounds; i++) {
      for (const name of Object.keys(cases)) {
        const dir = `${workDir}/${name.replace(/\W+/g, "-")}`;
        // new inputs: both steps have new hashes and must run
        Deno.writeTextFileSync(`${dir}/a.txt`, `a${i}`);
        Deno.writeTextFileSync(`${dir}/b.txt`, `b${i}`);
        loads.push(loadAvg());
        const t0 = performance.now();
        await hd(dir, "up -d");
        times[name].push(performance.now() - t0);
        await hd(dir, "down");
        log(`round ${i + 1} ${name}: ${Math.round(times[name].at(-1)!)} ms`);
      }
    }
    return Object.entries(times).map(([name, xs]) => ({
      bench: "steps",
      case: "two independent 2 s steps: hd up -d to ready",
      tool: name === "default jobs (cores)" ? "hd" : "hd jobs=1",
      value: Math.round(median(xs)),
      unit: "ms",
      extra: {
        setting: name,
        rounds: xs.length,
        min: Math.round(Math.min(...xs)),
        max: Math.round(Math.max(...xs)),
        all: xs.map(Math.round),
        load: median(loads),
        cores: navigator.hardwareConcurrency,
      },
    }));
  },
};
