/**
 * The fuzz loop, run in a Worker so the harness can stop an input that hangs. Posts `start`
 * (with the input) before each run, `fail` for an input that throws something the target does
 * not document or allocates too much, and `end` with the count.
 * @module
 */
/// <reference lib="deno.worker" />
import { TARGETS } from "./_targets.ts";
import { mutate, Rng } from "./_mutate.ts";

/** What the harness sends to start a run. */
export interface Job {
  target: string;
  seed: number;
  iterations: number;
  seconds: number;
  corpus: Uint8Array[];
  maxAllocBytes: number;
}

const mem = () => {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
};

self.onmessage = (ev: MessageEvent<Job>) => {
  const job = ev.data;
  const target = TARGETS[job.target];
  const rng = new Rng(job.seed);
  const corpus = job.corpus.length ? job.corpus : [new Uint8Array(0)];
  const until = performance.now() + job.seconds * 1000;
  let i = 0;
  for (; i < job.iterations && performance.now() < until; i++) {
    // Every corpus input once as it is, then mutations of random ones.
    const input = i < corpus.length ? corpus[i] : mutate(rng, rng.pick(corpus), corpus);
    self.postMessage({ t: "start", i, input });
    const before = mem();
    try {
      target.run(input);
    } catch (e) {
      if (!target.allowed(e)) {
        const err = e as Error;
        self.postMessage({
          t: "fail",
          i,
          input,
          kind: "exception",
          message: `${err?.name}: ${err?.message}`.slice(0, 500),
        });
      }
    }
    const grew = mem() - before;
    if (grew > job.maxAllocBytes) {
      self.postMessage({
        t: "fail",
        i,
        input,
        kind: "allocation",
        message: `heap grew by ${grew} bytes on one input`,
      });
    }
  }
  self.postMessage({ t: "end", runs: i });
};
