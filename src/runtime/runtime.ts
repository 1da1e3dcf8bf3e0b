/**
 * The runtime interface: what `hd up`'s loop (src/services/loop.ts) needs from the place where
 * build steps and services run. Two implement it — the host (src/runtime/host.ts, an environment
 * without `base`) and the sandbox of a base image (src/runtime/sandbox.ts) — and the loop talks
 * only to this interface, never to either class: whatever differs between them (how a step is
 * cached, when its outputs are recorded, whether a service's new settings can apply by a restart)
 * is a member here. {@link createRuntime} makes the one an environment needs, loading only its
 * code (a host environment never loads the sandbox, the OCI client or the FUSE server).
 *
 * @example
 * ```ts
 * import type { LoopRuntime } from "./runtime.ts";
 * import type { BuildStepSpec } from "../config/types.ts";
 * declare const rt: LoopRuntime;
 * declare const step: BuildStepSpec;
 * declare const hash: string;
 * await rt.prepare();
 * if (!rt.isCached(step.index, hash)) await rt.runStep(step.index, hash, step, {}).done;
 * await rt.ready();
 * if (rt.unrecorded > 0) await rt.recordPending();
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import type { BuildStepSpec, EnvSpec, ServiceSpec } from "../config/types.ts";
import { lazyImport } from "../sys/lazy.ts";

/**
 * What one run of a build step did.
 *
 * @example
 * ```ts
 * import type { StepRun } from "./runtime.ts";
 * const r: StepRun = { index: 0, hash: "ab12", code: 0, ms: 12 };
 * ```
 */
export interface StepRun {
  index: number;
  hash: string;
  code: number;
  ms: number;
}

/**
 * A build step being run; `stop()` ends it (its process group, or its container).
 *
 * @example
 * ```ts
 * import type { RunningStep } from "./runtime.ts";
 * declare const step: RunningStep;
 * const r = await Promise.race([step.done, step.stop(1000).then(() => null)]);
 * ```
 */
export interface RunningStep {
  done: Promise<StepRun>;
  stop(graceMs?: number): Promise<void>;
}

/**
 * What the loop needs from a runtime (see the module doc).
 *
 * @example
 * ```ts
 * import type { LoopRuntime } from "./runtime.ts";
 * declare const rt: LoopRuntime;
 * console.log(rt.baseId, Object.keys(rt.services), rt.servicesInPlace);
 * ```
 */
export interface LoopRuntime {
  /** Id standing for the base image in step hashes (set by prepare). */
  readonly baseId: string | undefined;
  /** Ids standing for the build stages' images in step hashes, by reference (set by prepare). */
  readonly imageIds?: Record<string, string>;
  /** Service specs as the supervisor must run them. */
  readonly services: Record<string, ServiceSpec>;
  /** Variables of the supervisor itself (the host side). */
  readonly hostEnv: Record<string, string>;
  /**
   * True when a service whose own settings changed in hd.toml runs with its new spec as written
   * after a restart (the host); false when the runtime derives how services run from the whole
   * environment (the sandbox writes their bundles in {@link ready}), so any change is a reload.
   */
  readonly servicesInPlace: boolean;
  /** Steps that ran and whose outputs are not recorded yet (see {@link recordPending}). */
  readonly unrecorded: number;
  /** Pulls and prepares what steps need (the base image); sets {@link baseId}. */
  prepare(): Promise<void>;
  /** True when step `index` with `hash` need not run (its result is there). */
  isCached(index: number, hash: string): boolean;
  /**
   * Starts step `index` (`hash`); output lines go to `onLine`, each whole. The loop calls it for
   * several steps at once when they do not depend on each other (`stepDeps`), and only once every
   * step that `index` depends on is done (ran or cached).
   */
  runStep(
    index: number,
    hash: string,
    step: BuildStepSpec,
    opts: { onLine?: (line: string) => void },
  ): RunningStep;
  /** Mounts the current root; true when it changed since the last call (restart services). */
  ready(): Promise<boolean>;
  /**
   * Records the outputs of the steps that ran since the last call (`builds/<hash>`). The loop
   * calls it a little after a run: reading a big `node_modules` should not hold back the
   * services being (re)started. A runtime that records them as it runs has nothing to do.
   */
  recordPending(): Promise<void>;
  /** Releases what the runtime holds while services run (the sandbox's network); optional. */
  close?(): Promise<void>;
  /**
   * Takes `tree` (a step result downloaded from the remote cache, src/remote) as the output of
   * step `index` (`hash`), as if it had run here: records `builds/<hash>` (and, on the host,
   * writes the outputs into the project). Called under the download's lease.
   */
  adopt?(index: number, hash: string, tree: string): Promise<void>;
}

/**
 * The runtime of `spec`: the host's when it has no `base` (src/runtime/host.ts), else the
 * sandbox of its base image (src/runtime/sandbox.ts, which sends progress lines to `note`). Each
 * module loads here, on demand: the other one, and what only it needs, stays unread.
 *
 * @example
 * ```ts
 * import { createRuntime } from "./runtime.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const rt = await createRuntime(spec, store, (line) => console.log(line));
 * await rt.prepare();
 * ```
 */
export async function createRuntime(
  spec: EnvSpec,
  store: Store,
  note: (line: string) => void = () => {},
): Promise<LoopRuntime> {
  if (spec.environment.base === null) {
    const { HostRuntime } = await lazyImport<typeof import("./host.ts")>(
      new URL("./host.ts", import.meta.url),
    );
    return HostRuntime.create(spec, store);
  }
  const { SandboxRuntime } = await lazyImport<typeof import("./sandbox.ts")>(
    new URL("./sandbox.ts", import.meta.url),
  );
  return new SandboxRuntime(spec, store, note);
}
