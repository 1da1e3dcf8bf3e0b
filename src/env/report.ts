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
import { trace } from "../sys/trace.ts";
import { lazyImport } from "../sys/lazy.ts";
import type { Store } from "../cas/store.ts";
import type { CompiledEnv } from "./compile.ts";
import {
  factsOf,
  loadBoundStatus,
  loadQuickStatus,
  type ProofChanges,
  proofSubject,
  saveQuickStatus,
  type SpecBinding,
  type SpecFacts,
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

/** What a status reads of a store: refs (a Store, or a StoreView). */
export interface RefReader {
  getRef(name: string): string | null;
}

function statusOf(
  store: RefReader,
  spec: SpecFacts,
  sum: StatusSummary,
  opts: { baseId?: string },
): Status {
  const name = spec.name;
  const recordedEnv = store.getRef(`envs/${name}`);
  const recordedTree = store.getRef(`trees/${name}`);
  return {
    name,
    file: spec.file,
    dir: spec.dir,
    base: spec.base,
    tree: {
      root: sum.filesRoot,
      files: sum.files,
      bytes: sum.bytes,
      cacheHits: sum.cacheHits,
      recorded: recordedTree,
    },
    env: { id: sum.envId, recorded: recordedEnv, upToDate: recordedEnv === sum.envId },
    lock: sum.lock,
    dependencies: spec.dependencies,
    packages: sum.packages,
    steps: sum.steps.map((s) => {
      const output = store.getRef(stepCacheRef(s.hash));
      return { ...s, cached: output !== null, output };
    }),
    skipped: sum.skipped,
    ...(spec.base === null ? {} : { basePulled: opts.baseId !== undefined }),
  };
}

/**
 * The status from the proof the last status saved (src/env/quick_status.ts), when it still holds;
 * null when it does not (then {@link gatherStatus} scans). `secret` is the store's key; refs are
 * read live from `store`.
 */
export async function quickStatus(
  store: RefReader,
  secret: Uint8Array,
  spec: EnvSpec,
  opts: { baseId?: string; imageIds?: Record<string, string> } = {},
): Promise<Status | null> {
  const q = await loadQuickStatus(secret, spec, proofSubject(spec, opts));
  const sum = q && await edited(spec, q.summary, q, opts);
  return sum ? statusOf(store, factsOf(spec), sum, opts) : null;
}

/**
 * The summary of a proof that holds but for tracked files edited in place (`changed`), worked
 * out from the proof's tree (src/env/proof_update.ts); the proof's own when none changed; null
 * when it cannot be worked out so (then scan).
 */
async function edited(
  spec: EnvSpec,
  summary: StatusSummary,
  changes: ProofChanges & { walked: readonly string[] },
  opts: { baseId?: string; imageIds?: Record<string, string> },
): Promise<StatusSummary | null> {
  const { changed, dirs } = changes;
  if (changed.length === 0 && dirs.length === 0) return summary;
  trace(
    `status: from the proof and ${changed.length} file(s) and ${dirs.length} directories ` +
      `changed since`,
  );
  // loaded only then: it pulls in the scanner's hashing and the steps' code
  const { updatedSummary } = await lazyImport<typeof import("./proof_update.ts")>(
    new URL("./proof_update.ts", import.meta.url),
  );
  return updatedSummary(spec, summary, changes, opts);
}

/**
 * The status of the project of the hd.toml at `file` (absolute) from a proof that binds hd.toml
 * too (src/env/quick_status.ts), without parsing it; null when there is none or it does not hold.
 */
export async function boundStatus(
  store: RefReader,
  secret: Uint8Array,
  file: string,
): Promise<Status | null> {
  const q = await loadBoundStatus(secret, file);
  if (!q) return null;
  let sum: StatusSummary | null = q.summary;
  if (q.changed.length > 0 || q.dirs.length > 0) {
    // a bound proof is of a project without images: its subject is [spec, null, {}]
    const [spec] = JSON.parse(q.subject) as [EnvSpec];
    sum = await edited(spec, q.summary, q, {});
  }
  return sum ? statusOf(store, q.facts, sum, {}) : null;
}

/**
 * Compiles the project (hashing only: it writes no object and moves no ref) and reports its
 * state. Pass `compiled` to report on an environment compiled already, and `baseId` and
 * `imageIds` (the pulled images, as the runtime hashes them) so that the step hashes are the ones
 * `hd up` uses. Without `compiled`, the proof of the last status is used when it holds
 * ({@link quickStatus}; `quick: false` always scans, `quick: "save"` scans and saves a proof), and
 * saved again after a scan.
 */
export async function gatherStatus(
  store: Store,
  spec: EnvSpec,
  compiled?: CompiledEnv,
  opts: {
    baseId?: string;
    imageIds?: Record<string, string>;
    quick?: boolean | "save";
    /** Let the saved proof bind hd.toml too (saveQuickStatus's `bind`). */
    bind?: SpecBinding;
  } = {},
): Promise<Status> {
  if (compiled) return statusOf(store, factsOf(spec), summaryOf(compiled), opts);
  const secret = store.identity().key;
  if (opts.quick === undefined || opts.quick === true) {
    const q = await quickStatus(store, secret, spec, opts);
    if (q) return q;
  }
  // loaded only for a scan: compiling pulls in the scanner, the DAG and the lock resolvers
  const { compileEnv } = await lazyImport<typeof import("./compile.ts")>(
    new URL("./compile.ts", import.meta.url),
  );
  const start = Date.now();
  // a report writes nothing to the store: ids are hashed, not stored
  const c = await compileEnv(store, spec, {
    record: false,
    write: false,
    baseId: opts.baseId,
    imageIds: opts.imageIds,
  });
  if (opts.quick !== false) {
    await saveQuickStatus(secret, spec, proofSubject(spec, opts), c, start, opts.bind);
  }
  return statusOf(store, factsOf(spec), summaryOf(c), opts);
}
