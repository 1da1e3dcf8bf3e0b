/**
 * Renders bench/out/results.json (from `deno task bench`) as docs/bench.md: one table per bench,
 * hd beside the peers measured in the same run. Run: `deno run -A scripts/benchmd.ts`.
 * @module
 */
import type { BenchRow } from "../bench/lib.ts";

const repo = new URL("..", import.meta.url).pathname;
const doc = JSON.parse(Deno.readTextFileSync(`${repo}bench/out/results.json`)) as {
  when: string;
  machine: { cores: number; deno: string };
  rows: BenchRow[];
  errors: { bench: string; error: string }[];
  note?: string;
};
const fmt = (v: number, unit: string) => {
  if (unit === "bytes") {
    return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(0)} KiB`;
  }
  const r = v >= 100 ? Math.round(v) : Math.round(v * 100) / 100;
  return `${r} ${unit}`;
};
const out = [
  "# Benchmarks",
  "",
  `\`deno task bench\` measures hd beside real peers in one run and writes bench/out/results.json.`,
  `The figures below are from ${doc.when.slice(0, 16).replace("T", " ")} UTC on this project's`,
  `machine kind (${doc.machine.cores} cores, Deno ${doc.machine.deno}); "cold" means the page cache`,
  "was dropped first. One run each: the 2-core machine is shared, so rows vary by 10–50% run to run.",
  ...(doc.note ? ["", `Note: ${doc.note}.`] : []),
  "",
];
const benches = [...new Set(doc.rows.map((r) => r.bench))];
for (const b of benches) {
  const rows = doc.rows.filter((r) => r.bench === b);
  const cases = [...new Set(rows.map((r) => r.case))];
  out.push(`## ${b}`, "", "| case | hd | peers (same run) |", "| --- | --- | --- |");
  for (const c of cases) {
    const rs = rows.filter((r) => r.case === c);
    const hd = rs.filter((r) => r.tool === "hd" || r.tool.startsWith("hd "));
    const peers = rs.filter((r) => !hd.includes(r));
    out.push(
      `| ${c} | ${
        hd.map((r) => `${r.tool === "hd" ? "" : r.tool + ": "}${fmt(r.value, r.unit)}`).join(
          "<br>",
        ) || "—"
      } | ${peers.map((r) => `${r.tool}: ${fmt(r.value, r.unit)}`).join("<br>") || "—"} |`,
    );
  }
  out.push("");
}
if (doc.errors.length) {
  out.push("## Benches that did not finish", "");
  for (const e of doc.errors) out.push(`- ${e.bench}: ${e.error.split("\n")[0]}`);
  out.push("");
}
Deno.writeTextFileSync(`${repo}docs/bench.md`, out.join("\n"));
console.log(`wrote docs/bench.md (${doc.rows.length} rows)`);
