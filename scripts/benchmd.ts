/**
 * Renders bench/out/results.json (from `deno task bench`) as docs/bench.md: one section per bench
 * module, its method from bench/notes/<module>.md (prose kept in the repository, so a new run
 * never overwrites it), when it ran and the load average around it, then a table of hd beside
 * the peers measured in the same run, each figure with its spread where the module recorded its
 * samples. Run: `deno run -A scripts/benchmd.ts [RESULTS.json]`.
 * @module
 */
import type { BenchRow } from "../bench/lib.ts";

/** What bench/run.ts writes. */
interface Results {
  when: string;
  machine: { cores: number; deno: string };
  quick?: boolean;
  modules?: {
    bench: string;
    started: string;
    seconds: number;
    load: [number, number];
    settle?: { ms: number; idlePct: number };
  }[];
  rows: BenchRow[];
  errors: { bench: string; error: string }[];
}

const repo = new URL("..", import.meta.url).pathname;

/**
 * A value with its unit, rounded for reading.
 * @example
 * ```ts
 * import { formatValue } from "./benchmd.ts";
 * formatValue(1536, "bytes"); // "2 KiB"
 * ```
 */
export function formatValue(v: number, unit: string): string {
  if (unit === "bytes") {
    return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(0)} KiB`;
  }
  const r = v >= 100 ? Math.round(v) : Math.round(v * 100) / 100;
  return `${r} ${unit}`;
}

const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const short = (v: number) => (v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10));

/**
 * The spread a row recorded, as "min–max, n=N": from `extra.samples` (numbers), `extra.min` and
 * `extra.max`, or `extra.spread` ([lo, hi] or text). Empty when the row has none.
 * @example
 * ```ts
 * import { spreadOf } from "./benchmd.ts";
 * spreadOf({ samples: [3, 1, 2] }); // "1–3, n=3"
 * ```
 */
export function spreadOf(extra: Record<string, unknown> | undefined): string {
  if (!extra) return "";
  const s = extra.samples;
  if (Array.isArray(s) && s.length > 1 && s.every(num)) {
    return `${short(Math.min(...s))}–${short(Math.max(...s))}, n=${s.length}`;
  }
  if (num(extra.min) && num(extra.max)) {
    return `${short(extra.min)}–${short(extra.max)}${num(extra.n) ? `, n=${extra.n}` : ""}`;
  }
  const sp = extra.spread;
  if (Array.isArray(sp) && sp.length === 2 && sp.every(num)) {
    return `${short(sp[0])}–${short(sp[1])}`;
  }
  if (typeof sp === "string") return sp;
  return "";
}

/** Renders results as the markdown of docs/bench.md; `notes` maps a module to its prose. */
export function renderBench(doc: Results, notes: Record<string, string>): string {
  const cell = (r: BenchRow, label: string) => {
    const sp = spreadOf(r.extra);
    return `${label}${formatValue(r.value, r.unit)}${sp ? ` (${sp})` : ""}`;
  };
  // results.json's `when` is written at the end of the run; the first module says when it began
  const started = doc.modules?.[0]?.started ?? doc.when;
  const secs = doc.modules?.reduce((n, m) => n + m.seconds, 0);
  const total = secs ? ` (${Math.round(secs / 60)} minutes in all)` : "";
  const intro = "`deno task bench` measures hd beside real peers in one run and writes " +
    "bench/out/results.json; `deno run -A scripts/benchmd.ts` renders it here, with each " +
    "module's method from bench/notes/. This page is one " + (doc.quick ? "**quick** " : "") +
    `run, started ${
      started.slice(0, 16).replace("T", " ")
    } UTC${total} on this project's machine ` +
    `kind (${doc.machine.cores} cores, Deno ${doc.machine.deno}). A figure in brackets is the ` +
    "spread (min–max) of the rounds behind the median beside it; the 1-minute load average " +
    'before and after each module is given with it. "Cold" means the page cache was dropped ' +
    "first. The 2-core machine is shared: compare a row with its peer of the same run, not " +
    "with another run.";
  const out = ["# Benchmarks", "", intro, ""];
  const benches = [...new Set(doc.rows.map((r) => r.bench))];
  for (const b of benches) {
    const rows = doc.rows.filter((r) => r.bench === b);
    const cases = [...new Set(rows.map((r) => r.case))];
    out.push(`## ${b}`, "");
    if (notes[b]) out.push(notes[b].trim(), "");
    const m = doc.modules?.find((x) => x.bench === b);
    if (m) {
      out.push(
        `Ran ${m.started.slice(11, 16)} UTC for ${m.seconds} s; load average ${m.load[0]} before, ${
          m.load[1]
        } after.` +
          (m.settle
            ? ` Before it, the machine settled for ${m.settle.ms} ms (\`sync\`, then a second ` +
              `${m.settle.idlePct}% idle).`
            : ""),
        "",
      );
    }
    out.push("| case | hd | peers (same run) |", "| --- | --- | --- |");
    for (const c of cases) {
      const rs = rows.filter((r) => r.case === c);
      const hd = rs.filter((r) => r.tool === "hd" || r.tool.startsWith("hd "));
      const peers = rs.filter((r) => !hd.includes(r));
      out.push(
        `| ${c} | ${
          hd.map((r) => cell(r, r.tool === "hd" && hd.length === 1 ? "" : r.tool + ": ")).join(
            "<br>",
          ) || "—"
        } | ${peers.map((r) => cell(r, `${r.tool}: `)).join("<br>") || "—"} |`,
      );
    }
    out.push("");
  }
  if (doc.errors.length) {
    out.push("## Benches that did not finish", "");
    for (const e of doc.errors) out.push(`- ${e.bench}: ${e.error.split("\n")[0]}`);
    out.push("");
  }
  return out.join("\n");
}

if (import.meta.main) {
  const path = Deno.args[0] ?? `${repo}bench/out/results.json`;
  const doc = JSON.parse(Deno.readTextFileSync(path)) as Results;
  const notes: Record<string, string> = {};
  for (const e of Deno.readDirSync(`${repo}bench/notes`)) {
    if (e.isFile && e.name.endsWith(".md")) {
      notes[e.name.slice(0, -3)] = Deno.readTextFileSync(`${repo}bench/notes/${e.name}`);
    }
  }
  const tmp = `${repo}docs/bench.md.tmp`;
  Deno.writeTextFileSync(tmp, renderBench(doc, notes));
  Deno.renameSync(tmp, `${repo}docs/bench.md`);
  // the tables aligned as `deno fmt` (and so `deno task check`) wants them
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", `${repo}docs/bench.md`] })
    .output();
  console.log(`wrote docs/bench.md (${doc.rows.length} rows)`);
}
