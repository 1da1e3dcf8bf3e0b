/**
 * Build steps on the host (an environment without `base`): the step cache and running a step
 * with `sh -c` in the project directory (its own process group), output streamed line by line.
 *
 * A step's hash comes from src/env/compile.ts (`stepHashes`). A successful host run is recorded
 * twice: `.hd/steps/<hash>.json` in the project (the outputs live in this checkout, so this is
 * what makes the step cached here — together with its declared outputs still existing), and the
 * store ref `builds/<hash>` → a Dir of the step's declared outputs as they were after the run
 * (what `hd status` reads). The sandbox issue will add sandboxed execution with output layers.
 *
 * @example
 * ```ts
 * import { isStepCached, runHostStep } from "./host.ts";
 * const step = spec.build.steps[0];
 * if (!isStepCached(spec, step, hash)) await runHostStep(spec, step, hash, { store }).done;
 * ```
 * @module
 */
import { privateDir, writePrivateAtomic } from "../sys/fs.ts";
import type { Store } from "../cas/store.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { ingestFile, ingestTree } from "../scan/ingest.ts";
import { stepCacheRef } from "../env/report.ts";
import type { BuildStepSpec, EnvSpec, ServiceSpec } from "../config/types.ts";
import type { LoopRuntime } from "./sandbox.ts";
import { signalGroup, spawnGroup, stopGroup } from "../sandbox/process.ts";

/** Path of the record of a successful run of step `hash`. */
export function stepRecordPath(spec: EnvSpec, hash: string): string {
  return `${spec.dir}/.hd/steps/${hash}.json`;
}

/** True when step `hash` ran successfully here and its declared outputs still exist. */
export function isStepCached(spec: EnvSpec, step: BuildStepSpec, hash: string): boolean {
  try {
    Deno.statSync(stepRecordPath(spec, hash));
  } catch {
    return false;
  }
  for (const o of step.outputs) {
    try {
      Deno.lstatSync(`${spec.dir}/${o}`);
    } catch {
      return false;
    }
  }
  return true;
}

/** What one host run of a step did. */
export interface StepRun {
  index: number;
  hash: string;
  code: number;
  ms: number;
}

/** A step being run; `stop()` ends its process group. */
export interface RunningStep {
  done: Promise<StepRun>;
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs `step` on the host with `sh -c` in the project directory (its own process group) and, when
 * it exits 0, records it in the step cache. Output lines go to `onLine`.
 */
export function runHostStep(
  spec: EnvSpec,
  step: BuildStepSpec,
  hash: string,
  opts: {
    onLine?: (line: string) => void;
    baseEnv?: Record<string, string>;
    /** Where to record `builds/<hash>` → the captured outputs. */
    store?: Store;
    /** Capture the outputs now (default); false leaves it to {@link recordOutputs} later. */
    capture?: boolean;
  } = {},
): RunningStep {
  const t0 = performance.now();
  const env = { ...(opts.baseEnv ?? Deno.env.toObject()), ...spec.environment.env, ...step.env };
  const cwd = spec.environment.workdir && !spec.environment.base
    ? (spec.environment.workdir.startsWith("/")
      ? spec.environment.workdir
      : `${spec.dir}/${spec.environment.workdir}`)
    : spec.dir;
  const p = spawnGroup(step.run, { cwd, env });
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) (opts.onLine?.(buf.slice(0, i)), buf = buf.slice(i + 1));
    }
    if (buf) opts.onLine?.(buf);
  };
  const done = (async () => {
    const pumps = Promise.all([pump(p.stdout), pump(p.stderr)]);
    const st = await p.status;
    // a step that left processes behind holding its output open: they go with the step
    const drained = await Promise.race([
      pumps.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
    ]);
    if (!drained) {
      signalGroup(p.pid, "SIGKILL");
      await pumps;
    }
    const code = st.signal ? 128 + 15 : st.code;
    if (code === 0) {
      let outputs: string | null = null;
      if (opts.store && opts.capture !== false) {
        outputs = await recordOutputs(opts.store, spec, step, hash);
      }
      recordStep(spec, hash, { index: step.index, run: step.run, outputs });
    }
    return { index: step.index, hash, code, ms: performance.now() - t0 };
  })();
  return {
    done,
    stop: async (graceMs = 2000) => {
      await stopGroup(p.pid, p.status, graceMs);
    },
  };
}

/** Writes the step cache record of `hash` atomically. */
export function recordStep(spec: EnvSpec, hash: string, info: Record<string, unknown>): void {
  privateDir(`${spec.dir}/.hd`);
  writePrivateAtomic(
    stepRecordPath(spec, hash),
    JSON.stringify({ hash, ...info, at: new Date().toISOString() }),
  );
}

/** Captures the outputs of step `hash` and records them as `builds/<hash>`; returns their id. */
export async function recordOutputs(
  store: Store,
  spec: EnvSpec,
  step: BuildStepSpec,
  hash: string,
): Promise<string> {
  using _lease = store.lease(`step outputs ${hash.slice(0, 12)}`);
  const id = await store.withLock("shared", () => captureOutputs(store, spec, step));
  store.setRef(stepCacheRef(hash), id);
  return id;
}

/** Stores the declared outputs of `step` as one Dir tree (missing outputs are left out). */
export function captureOutputs(store: Store, spec: EnvSpec, step: BuildStepSpec): string {
  const t = new Tree(new MemDir());
  for (const o of step.outputs) {
    const abs = `${spec.dir}/${o}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(abs);
    } catch {
      continue;
    }
    if (st.isDirectory) t.setDir(o, ingestTree(store, abs).tree.root);
    else if (st.isFile || st.isSymlink) t.setFile(o, ingestFile(store, abs, st));
  }
  return t.commit(store);
}

/**
 * The host as the runtime of `hd up`'s loop (the environment has no `base`): steps run with
 * {@link runHostStep}, are cached by {@link isStepCached}, and services run as declared.
 * Outputs are recorded later with {@link recordOutputs} (see `pending`).
 */
export class HostRuntime implements LoopRuntime {
  readonly baseId: string | undefined = undefined;
  readonly services: Record<string, ServiceSpec>;
  readonly hostEnv: Record<string, string>;
  /** Steps that ran and whose outputs are not recorded yet (hash → index). */
  readonly pending = new Map<string, number>();
  #spec: EnvSpec;

  constructor(spec: EnvSpec) {
    this.#spec = spec;
    this.services = spec.services;
    this.hostEnv = { ...Deno.env.toObject(), ...spec.environment.env };
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  isCached(index: number, hash: string): boolean {
    return isStepCached(this.#spec, this.#spec.build.steps[index], hash);
  }

  runStep(
    index: number,
    hash: string,
    step: BuildStepSpec,
    opts: { onLine?: (line: string) => void },
  ): RunningStep {
    const r = runHostStep(this.#spec, step, hash, { onLine: opts.onLine, capture: false });
    return {
      done: r.done.then((res) => {
        if (res.code === 0) this.pending.set(hash, index);
        return res;
      }),
      stop: r.stop,
    };
  }

  ready(): Promise<boolean> {
    return Promise.resolve(false);
  }
}
