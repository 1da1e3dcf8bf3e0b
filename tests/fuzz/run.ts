/**
 * `deno task fuzz [--target tar|toml|node] [--seconds N] [--seed N]`: fuzzes each target (or the
 * one named) for N seconds (default 60 each) and saves every failing input to
 * tests/fuzz/corpus/<target>/crash-<hash>, where `deno test tests/fuzz/` replays it from then on.
 * Exits 1 when something failed.
 * @module
 */
import { parseArgs } from "node:util";
import { describe, fuzz } from "./_fuzz.ts";
import { TARGETS } from "./_targets.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
  },
});
const names = values.target ? [values.target] : Object.keys(TARGETS);
for (const n of names) {
  if (!TARGETS[n]) {
    console.error(`error: no fuzz target "${n}" (targets: ${Object.keys(TARGETS).join(", ")})`);
    Deno.exit(2);
  }
}
const seconds = Number(values.seconds);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() >>> 0;
let bad = 0;
for (const target of names) {
  const t0 = performance.now();
  const { runs, failures } = await fuzz({ target, seed, seconds, save: true });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`${target}: ${runs} inputs in ${s} s (seed ${seed}), ${failures.length} failures`);
  for (const f of failures) console.log(`  ${describe(f).slice(0, 400)}`);
  bad += failures.length;
}
Deno.exit(bad ? 1 : 0);
