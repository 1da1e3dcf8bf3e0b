/**
 * The data behind `hd status`: the environment's name, the hashes of its tracked tree and Env
 * node, the build steps with their hashes and whether each is cached, and the state of hd.lock.
 * The inner loop extends the report with services; keep gathering here and printing in the CLI.
 *
 * A step counts as cached when the ref `builds/<step hash>` exists (the build module records it
 * when a step's output layer is stored; see {@link stepCacheRef}).
 *
 * @example
 * ```ts
 * import { gatherStatus } from "./report.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const store: Store;
 * declare const spec: EnvSpec;
 * const s = await gatherStatus(store, spec);
 * console.log(s.env.id, s.steps.map((x) => x.cached));
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { type CompiledEnv, compileEnv } from "./compile.ts";
import type { LockState } from "../config/lockfile.ts";
import type { EnvSpec } from "../config/types.ts";

/** The ref under which a built step's result is recorded. */
export function stepCacheRef(stepId: string): string {
  return `builds/${stepId}`;
}

/** One build step in the status. */
export interface StepStatus {
  index: number;
  run: string;
  /** "chained" (string form, or a table without inputs) or "inputs" (declared inputs). */
  kind: "chained" | "inputs";
  hash: string;
  /** True when `builds/<hash>` is recorded in the store. */
  cached: boolean;
  /** What `builds/<hash>` points at, when cached. */
  output: string | null;
  inputs: { label: string; hash: string; files: number; missing: boolean }[];
}

/** What `hd status` reports (the foundation part). */
export interface Status {
  name: string;
  file: string;
  dir: string;
  base: string | null;
  tree: { root: string; files: number; bytes: number; cacheHits: number; recorded: string | null };
  env: {
    id: string;
    /** The Env id recorded under `envs/<name>`, or null. */
    recorded: string | null;
    /** True when the recorded Env equals the current one. */
    upToDate: boolean;
  };
  lock: LockState;
  /** Entries in [dependencies]. */
  dependencies: number;
  packages: number;
  steps: StepStatus[];
  skipped: { path: string; why: string }[];
  /** With a base: whether it is pulled (its record id given); until then step hashes are provisional. */
  basePulled?: boolean;
}

/**
 * Compiles the project (hashing only: it writes no object and moves no ref) and reports its state. Pass `compiled` to report
 * on an environment compiled already, and `baseId` and `imageIds` (the pulled images, as the
 * runtime hashes them) so that the step hashes are the ones `hd up` uses.
 */
export async function gatherStatus(
  store: Store,
  spec: EnvSpec,
  compiled?: CompiledEnv,
  opts: { baseId?: string; imageIds?: Record<string, string> } = {},
): Promise<Status> {
  const name = spec.environment.name;
  const recordedEnv = store.getRef(`envs/${name}`);
  const recordedTree = store.getRef(`trees/${name}`);
  // a report writes nothing to the store: ids are hashed, not stored
  const c = compiled ?? await compileEnv(store, spec, {
    record: false,
    write: false,
    baseId: opts.baseId,
    imageIds: opts.imageIds,
  });
  return {
    name,
    file: spec.file,
    dir: spec.dir,
    base: spec.environment.base,
    tree: {
      root: c.filesRoot,
      files: c.files,
      bytes: c.bytes,
      cacheHits: c.cacheHits,
      recorded: recordedTree,
    },
    env: { id: c.envId, recorded: recordedEnv, upToDate: recordedEnv === c.envId },
    lock: c.lock,
    dependencies: spec.dependencies.length,
    packages: c.packages.length,
    steps: c.steps.map((s) => {
      const output = store.getRef(stepCacheRef(s.id));
      return {
        index: s.index,
        run: s.spec.run,
        kind: s.spec.inputs === null ? "chained" : "inputs",
        hash: s.id,
        cached: output !== null,
        output,
        inputs: s.inputs.map((i) => ({
          label: i.label,
          hash: i.id,
          files: i.files,
          missing: i.missing ?? false,
        })),
      };
    }),
    skipped: c.skipped,
    ...(spec.environment.base === null ? {} : { basePulled: opts.baseId !== undefined }),
  };
}
