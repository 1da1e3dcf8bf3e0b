/**
 * Benchmark helpers: timing commands and functions, and the row format every bench emits.
 * `deno task bench` (bench/run.ts) runs each bench module and writes all rows to
 * bench/out/results.json.
 * @module
 */

/** One measured figure. */
export interface BenchRow {
  /** Group (e.g. "cas", "fuse", "oci"). */
  bench: string;
  /** What was measured ("cold add node_modules"). */
  case: string;
  /** Who did it: "hd" or the peer's name ("restic", "git", "b3sum"). */
  tool: string;
  value: number;
  unit: string;
  /** Free-form details (sizes, counts). */
  extra?: Record<string, unknown>;
}

/** A bench module: `export const bench: Bench`. */
export interface Bench {
  name: string;
  run(ctx: { workDir: string; quick: boolean; log: (s: string) => void }): Promise<BenchRow[]>;
}

/** Runs a command and returns its wall time in ms; throws when it fails. */
export async function timeCmd(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const ms = performance.now() - t;
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).slice(0, 400)}`,
    );
  }
  return ms;
}

/** Runs a shell line; returns stdout (throws on failure). */
export async function sh(line: string, opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", line],
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`sh -c ${line} failed: ${new TextDecoder().decode(out.stderr).slice(0, 400)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * Runs `hd ARGS` from the checkout whose entry is `cli` (…/cli.ts) with `HD_HOME=store` (for the
 * A/B scripts that alternate checkouts); returns its stdout, or throws with its stderr.
 */
export async function hdAt(
  cli: string,
  args: string[],
  store: string,
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", cli, ...args],
    env: { HD_HOME: store, NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  if (!out.success) throw new Error(`hd ${args.join(" ")}: ${d.decode(out.stderr)}`);
  return d.decode(out.stdout);
}

/**
 * The command line of the A/B scripts: `opt(name, default)` reads `--name VALUE`, and `clis` are
 * the `--cli PATH` checkouts to alternate (this one when none is given).
 */
export function abOptions(args: string[]): {
  opt: (name: string, dflt: string) => string;
  clis: string[];
} {
  const opt = (name: string, dflt: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const clis = args.flatMap((a, i) => (a === "--cli" ? [args[i + 1]] : []));
  if (!clis.length) clis.push(new URL("../cli.ts", import.meta.url).pathname);
  return { opt, clis };
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** p-th percentile (0..100) of numbers. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** The 1-minute load average (/proc/loadavg), or -1 where it cannot be read. */
export function loadavg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return -1;
  }
}

/** Median and spread of samples, rounded, for a row's `extra`. */
export function spread(xs: number[], digits = 0): { median: number; min: number; max: number } {
  const r = (x: number) => +x.toFixed(digits);
  return { median: r(median(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

/** Drops the page cache when possible (root), so "cold" means cold. */
export async function dropCaches(): Promise<boolean> {
  try {
    await sh("sync && echo 3 > /proc/sys/vm/drop_caches");
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on 127.0.0.1 (closed again: the caller binds it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The body of `GET http://127.0.0.1:<port>/`, or null when nothing answers. */
export async function getAnswer(port: number): Promise<string | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`);
    return await r.text();
  } catch {
    return null;
  }
}

/** Polls 127.0.0.1:`port` until its answer contains `needle`; returns the ms since `t0`. */
export async function untilPortAnswer(
  port: number,
  needle: string,
  t0: number,
  limitMs = 20_000,
): Promise<number> {
  while (performance.now() - t0 < limitMs) {
    const body = await getAnswer(port);
    if (body?.includes(needle)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`no answer containing "${needle}" on :${port} within ${limitMs} ms`);
}

/**
 * Runs `bench` on its own (`deno run -A bench/<name>.ts [--quick]`) in a new temp dir named
 * `prefix…`, its log on stdout, and prints its rows as a table (values rounded).
 */
export async function runAloneTable(bench: Bench, prefix: string): Promise<void> {
  const rows = await bench.run({
    workDir: Deno.makeTempDirSync({ prefix }),
    quick: Deno.args.includes("--quick"),
    log: (s) => console.log(s),
  });
  console.table(rows.map(({ extra: _e, ...r }) => ({ ...r, value: Math.round(r.value) })));
}

/**
 * Runs `bench` on its own in a new temp dir named `prefix…` (removed after), its log on stderr,
 * and prints a line a row: case, tool (padded to `toolWidth`), value, unit.
 */
export async function runAloneLines(
  bench: Bench,
  prefix: string,
  toolWidth: number,
): Promise<void> {
  const workDir = Deno.makeTempDirSync({ prefix });
  const rows = await bench.run({
    workDir,
    quick: Deno.args.includes("--quick"),
    log: (s) => console.error(s),
  });
  for (const r of rows) {
    console.log(
      `${r.case.padEnd(44)} ${r.tool.padEnd(toolWidth)} ${String(r.value).padStart(8)} ${r.unit}`,
    );
  }
  Deno.removeSync(workDir, { recursive: true });
}
