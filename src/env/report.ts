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
import {
  loadQuickStatus,
  proofSubject,
  saveQuickStatus,
  type StatusSummary,
  summaryOf,
} from "./quick_status.ts";
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
 * Compiles the project (hashing only: it writes no object and moves no ref) and reports its
 * state. Pass `compiled` to report on an environment compiled already, and `baseId` and `imageIds` (the pulled images, as the
 * runtime hashes them) so that the step hashes are the ones `hd up` uses. Without `compiled`, the
 * proof of the last status is used when it holds (src/env/quick_status.ts; `quick: false` always
 * scans), and saved again after a scan.
 */
export async function gatherStatus(
  store: Store,
  spec: EnvSpec,
  compiled?: CompiledEnv,
  opts: { baseId?: string; imageIds?: Record<string, string>; quick?: boolean } = {},
): Promise<Status> {
  const name = spec.environment.name;
  const recordedEnv = store.getRef(`envs/${name}`);
  const recordedTree = store.getRef(`trees/${name}`);
  let sum: StatusSummary;
  if (compiled) sum = summaryOf(compiled);
  else {
    // the proof saved by the last status, when nothing it covers changed (quick_status.ts)
    const subject = proofSubject(spec, opts);
    const quick = opts.quick === false ? null : await loadQuickStatus(store, spec, subject);
    if (quick) sum = quick;
    else {
      const start = Date.now();
      // a report writes nothing to the store: ids are hashed, not stored
      const c = await compileEnv(store, spec, {
        record: false,
        write: false,
        baseId: opts.baseId,
        imageIds: opts.imageIds,
      });
      if (opts.quick !== false) await saveQuickStatus(store, spec, subject, c, start);
      sum = summaryOf(c);
    }
  }
  return {
    name,
    file: spec.file,
    dir: spec.dir,
    base: spec.environment.base,
    tree: {
      root: sum.filesRoot,
      files: sum.files,
      bytes: sum.bytes,
      cacheHits: sum.cacheHits,
      recorded: recordedTree,
    },
    env: { id: sum.envId, recorded: recordedEnv, upToDate: recordedEnv === sum.envId },
    lock: sum.lock,
    dependencies: spec.dependencies.length,
    packages: sum.packages,
    steps: sum.steps.map((s) => {
      const output = store.getRef(stepCacheRef(s.hash));
      return { ...s, cached: output !== null, output };
    }),
    skipped: sum.skipped,
    ...(spec.environment.base === null ? {} : { basePulled: opts.baseId !== undefined }),
  };
}
