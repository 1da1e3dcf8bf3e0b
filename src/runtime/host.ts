/**
 * Build steps on the host (an environment without `base`): the step cache and running a step
 * with `sh -c` in the project directory (its own process group), output streamed line by line.
 *
 * A step's hash comes from src/env/compile.ts (`stepHashes`). A successful host run is recorded
 * twice: `.hd/steps/<hash>.json` in the project (the outputs live in this checkout, so this is
 * what makes the step cached here — together with its declared outputs still existing), and the
 * store ref `builds/<hash>` → a Dir of the step's declared outputs as they were after the run
 * (what `hd status` reads). An environment with a `base` runs its steps in the sandbox instead
 * (sandbox.ts); both are runtimes of the loop (runtime.ts).
 *
 * @example
 * ```ts
 * import { isStepCached, runHostStep } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * declare const hash: string;
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
import type { LoopRuntime, RunningStep, StepRun } from "./runtime.ts";
import type { ImageServices } from "./image_services.ts";
import { signalGroup, spawnGroup, stopGroup } from "../sandbox/process.ts";
import { lazyImport } from "../sys/lazy.ts";
import { shQuote } from "../sys/shell.ts";
import { isStepCached, stepRecordPath } from "./step_record.ts";

// where a host step is recorded, and whether it is cached: in their own module, which the services
// started early (src/services/prespawn.ts) load without this one
export { isStepCached, stepRecordPath } from "./step_record.ts";

/**
 * Runs `step` on the host with `sh -c` in the project directory (its own process group) and, when
 * it exits 0, records it in the step cache. Output lines go to `onLine`.
 *
 * @example
 * ```ts
 * import { runHostStep } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const r = await runHostStep(spec, spec.build.steps[0], "ab12", { store, onLine: console.log }).done;
 * console.log(r.code, r.ms);
 * ```
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
  const envCwd = spec.environment.workdir && !spec.environment.base
    ? (spec.environment.workdir.startsWith("/")
      ? spec.environment.workdir
      : `${spec.dir}/${spec.environment.workdir}`)
    : spec.dir;
  // a step's own `workdir` (absolute, or below the environment's)
  const w = step.workdir;
  const cwd = !w ? envCwd : w.startsWith("/") ? w : `${envCwd}/${w}`;
  // [build] shell: its argv with the command appended (sh execs it), else sh -c
  const sh = spec.build.shell;
  const p = spawnGroup(sh ? `exec ${[...sh, step.run].map(shQuote).join(" ")}` : step.run, {
    cwd,
    env,
  });
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) (opts.onLine?.(buf.slice(0, i)), buf = buf.slice(i + 1));
    }
    if (buf) opts.onLine?.(buf);
  };
  const done = (async (): Promise<StepRun> => {
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

/**
 * Writes the step cache record of `hash` atomically.
 *
 * @example
 * ```ts
 * import { recordStep } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * recordStep(spec, "ab12", { index: 0, run: "npm ci", outputs: null });
 * ```
 */
export function recordStep(spec: EnvSpec, hash: string, info: Record<string, unknown>): void {
  privateDir(`${spec.dir}/.hd`);
  writePrivateAtomic(
    stepRecordPath(spec, hash),
    JSON.stringify({ hash, ...info, at: new Date().toISOString() }),
  );
}

/**
 * Captures the outputs of step `hash` and records them as `builds/<hash>`; returns their id.
 *
 * @example
 * ```ts
 * import { recordOutputs } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const id = await recordOutputs(store, spec, spec.build.steps[0], "ab12");
 * ```
 */
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

/**
 * Stores the declared outputs of `step` as one Dir tree (missing outputs are left out).
 *
 * @example
 * ```ts
 * import { captureOutputs } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const dirId = captureOutputs(store, spec, spec.build.steps[0]);
 * ```
 */
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
    // the step (or what it left running) may still write here: nothing below the project is
    // followed through a symlink (src/sys/nofollow.ts)
    if (st.isDirectory) t.setDir(o, ingestTree(store, abs, { root: spec.dir }).tree.root);
    else if (st.isFile || st.isSymlink) t.setFile(o, ingestFile(store, abs, st, spec.dir));
  }
  return t.commit(store);
}

/**
 * True when a service of host environment `spec` needs the image services' code: it has an
 * `image` (it runs in a container of its own), or `secrets` (their paths go into its environment).
 */
export function needsImageServices(spec: EnvSpec): boolean {
  return Object.values(spec.services).some((s) => s.image !== undefined || !!s.secrets?.length);
}

/**
 * The host as the runtime of `hd up`'s loop (the environment has no `base`): steps run with
 * {@link runHostStep}, are cached by {@link isStepCached}, and services run as declared (so a
 * service's new settings apply by restarting it). A step's outputs are recorded later, by
 * {@link HostRuntime.recordPending} (with {@link recordOutputs}), so that restarting services does
 * not wait for reading them.
 *
 * @example
 * ```ts
 * import { HostRuntime } from "./host.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const rt = await HostRuntime.create(spec, store);
 * const step = spec.build.steps[0];
 * if (!rt.isCached(0, "hash")) await rt.runStep(0, "hash", step, {}).done;
 * await rt.recordPending(); // builds/hash -> its outputs
 * ```
 */
export class HostRuntime implements LoopRuntime {
  readonly baseId: string | undefined = undefined;
  readonly services: Record<string, ServiceSpec>;
  readonly hostEnv: Record<string, string>;
  readonly servicesInPlace: boolean;
  /**
   * Services with an image of their own, or host secrets (image_services.ts); null when no
   * service has either (that module and the sandbox code it needs are then never loaded).
   */
  #images: ImageServices | null;
  /** Steps that ran and whose outputs are not recorded yet (hash → index). */
  #pending = new Map<string, number>();
  #spec: EnvSpec;
  #store: Store;

  /**
   * The runtime of `spec`; step outputs are recorded in `store`. Loads the image services' code
   * only when {@link needsImageServices} says a service needs it.
   */
  static async create(spec: EnvSpec, store: Store): Promise<HostRuntime> {
    if (!needsImageServices(spec)) return new HostRuntime(spec, store, null);
    const { ImageServices } = await lazyImport<typeof import("./image_services.ts")>(
      new URL("./image_services.ts", import.meta.url),
    );
    return new HostRuntime(spec, store, new ImageServices(spec, store));
  }

  /**
   * The runtime of `spec` with `images` (which {@link create} makes): null only when no service
   * needs them, else this throws.
   */
  constructor(spec: EnvSpec, store: Store, images: ImageServices | null) {
    if (images === null && needsImageServices(spec)) {
      throw new Error("HostRuntime: services with an image or secrets need ImageServices (create)");
    }
    this.#spec = spec;
    this.#store = store;
    this.#images = images;
    this.services = images ? images.wrap(spec.services) : { ...spec.services };
    // an image service's bundle is written from the whole spec: a change of it takes a reload
    this.servicesInPlace = !images?.any;
    this.hostEnv = { ...Deno.env.toObject(), ...spec.environment.env };
  }

  get unrecorded(): number {
    return this.#pending.size;
  }

  async prepare(): Promise<void> {
    if (!this.#images?.any) return;
    const { lazyLayers } = await lazyImport<typeof import("./sandbox_steps.ts")>(
      new URL("./sandbox_steps.ts", import.meta.url),
    );
    await this.#images.prepare(lazyLayers(this.#spec));
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
        if (res.code === 0) this.#pending.set(hash, index);
        return res;
      }),
      stop: r.stop,
    };
  }

  ready(): Promise<boolean> {
    this.#images?.ready();
    return Promise.resolve(false);
  }

  /** A remote result holds the step's outputs: written into the project, then recorded. */
  async adopt(index: number, hash: string, tree: string): Promise<void> {
    const step = this.#spec.build.steps[index];
    const { placeOutputs } = await lazyImport<typeof import("./remote_steps.ts")>(
      new URL("./remote_steps.ts", import.meta.url),
    );
    placeOutputs(this.#store, this.#spec, step, tree);
    this.#store.setRef(stepCacheRef(hash), tree);
    recordStep(this.#spec, hash, { index, run: step.run, outputs: tree, remote: true });
  }

  /** Records `builds/<hash>` of each step that ran since the last call (the first error stops it). */
  async recordPending(): Promise<void> {
    const todo = [...this.#pending];
    this.#pending.clear();
    for (const [hash, index] of todo) {
      await recordOutputs(this.#store, this.#spec, this.#spec.build.steps[index], hash);
    }
  }
}
