/**
 * The fuzz harness: runs a target ({@link ./_targets.ts}) over its corpus
 * (`tests/fuzz/corpus/<target>/`: small valid seeds plus every crash found) and seeded mutations
 * of it, in a Worker watched for hangs. `deno test` runs each target briefly
 * (tests/fuzz/fuzz_test.ts); `deno task fuzz` runs longer and saves what it finds to the corpus.
 * @module
 */
import { createHash } from "node:crypto";
import type { Job } from "./_worker.ts";

/** Where the corpus of `target` lives. */
export function corpusDir(target: string): string {
  return new URL(`./corpus/${target}/`, import.meta.url).pathname;
}

/** The inputs of a target's corpus, in file-name order. */
export function loadCorpus(target: string): { name: string; bytes: Uint8Array }[] {
  const dir = corpusDir(target);
  const out: { name: string; bytes: Uint8Array }[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile) out.push({ name: e.name, bytes: Deno.readFileSync(dir + e.name) });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** An input that broke a property. */
export interface Failure {
  kind: "exception" | "allocation" | "hang";
  message: string;
  input: Uint8Array;
  /** Where it was saved in the corpus, when saving. */
  saved?: string;
}

/** Options of {@link fuzz}. */
export interface FuzzOptions {
  target: string;
  seed: number;
  /** Stop after this many inputs… */
  iterations?: number;
  /** …or after this many seconds, whichever comes first. */
  seconds?: number;
  /** An input running longer than this is a hang. */
  hangMs?: number;
  /** Heap growth on one input above this is unbounded allocation. */
  maxAllocBytes?: number;
  /** Save each failure to the corpus (`crash-<sha256>`). */
  save?: boolean;
  /** Stop at the first failure. */
  stopAtFirst?: boolean;
}

/** Runs a target; returns how many inputs ran and what failed. */
export async function fuzz(o: FuzzOptions): Promise<{ runs: number; failures: Failure[] }> {
  const corpus = loadCorpus(o.target).map((c) => c.bytes);
  const failures: Failure[] = [];
  const hangMs = o.hangMs ?? 2000;
  let runs = 0;
  let seed = o.seed;
  let iterations = o.iterations ?? Infinity;
  const deadline = performance.now() + (o.seconds ?? 3600) * 1000;
  // Saved: the first input of each kind of failure (digits aside) and at most 20 per run, so a
  // bug hit a thousand times adds one file, not a thousand.
  const kinds = new Set<string>();
  const record = (f: Failure) => {
    const kind = `${f.kind}:${f.message.replace(/\d+/g, "N").replace(/"[^"]*"/g, "S")}`;
    const fresh = !kinds.has(kind);
    kinds.add(kind);
    if (o.save && fresh && kinds.size <= 20) {
      const name = `crash-${createHash("sha256").update(f.input).digest("hex").slice(0, 16)}`;
      Deno.mkdirSync(corpusDir(o.target), { recursive: true });
      Deno.writeFileSync(corpusDir(o.target) + name, f.input);
      f.saved = corpusDir(o.target) + name;
    }
    failures.push(f);
  };
  // A worker per stretch without a hang; after a hang the next one goes on with a new seed.
  while (iterations > 0 && performance.now() < deadline) {
    const worker = new Worker(new URL("./_worker.ts", import.meta.url), { type: "module" });
    const job: Job = {
      target: o.target,
      seed,
      iterations: Number.isFinite(iterations) ? iterations : 2 ** 31,
      seconds: Math.max(0, (deadline - performance.now()) / 1000),
      corpus,
      maxAllocBytes: o.maxAllocBytes ?? 256 << 20,
    };
    const result = await new Promise<{ runs: number; hung: boolean }>((resolve) => {
      let last = performance.now();
      let current: { i: number; input: Uint8Array } | null = null;
      const watch = setInterval(() => {
        if (performance.now() - last > hangMs) {
          clearInterval(watch);
          worker.terminate();
          if (current) {
            record({ kind: "hang", message: `no result after ${hangMs} ms`, input: current.input });
          }
          resolve({ runs: (current?.i ?? 0) + 1, hung: true });
        }
      }, 50);
      worker.onmessage = (ev) => {
        last = performance.now();
        const m = ev.data;
        if (m.t === "start") current = { i: m.i, input: m.input };
        else if (m.t === "fail") {
          record({ kind: m.kind, message: m.message, input: m.input });
          if (o.stopAtFirst) {
            clearInterval(watch);
            worker.terminate();
            resolve({ runs: m.i + 1, hung: false });
          }
        } else if (m.t === "end") {
          clearInterval(watch);
          worker.terminate();
          resolve({ runs: m.runs, hung: false });
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        clearInterval(watch);
        worker.terminate();
        record({
          kind: "exception",
          message: `the worker died: ${e.message}`,
          input: current?.input ?? new Uint8Array(0),
        });
        resolve({ runs: (current?.i ?? 0) + 1, hung: true });
      };
      worker.postMessage(job);
    });
    runs += result.runs;
    iterations -= result.runs;
    if (!result.hung || (o.stopAtFirst && failures.length)) break;
    seed = (seed * 31 + result.runs) >>> 0;
  }
  return { runs, failures };
}

/** A failure for a message: kind, message and the input (base64, shortened). */
export function describe(f: Failure): string {
  let b64 = btoa(String.fromCharCode(...f.input.subarray(0, 3000)));
  if (f.input.length > 3000) b64 += "…";
  return `${f.kind}: ${f.message} (${f.input.length} bytes${
    f.saved ? `, saved as ${f.saved}` : ""
  }): ${b64}`;
}
