/**
 * Compile: an {@link EnvSpec}, its project directory and a store → the Env DAG.
 *
 * - The tracked files ([files] include/exclude, the default excludes, and every declared step
 *   output) are ingested into a Dir tree, with a stat cache at `<project>/.hd/statcache.json`.
 * - Dependencies become stored Package nodes, from hd.lock when it is current, else resolved now.
 * - Each build step becomes a stored BuildStep node, hashed as src/env/step_hashes.ts says (the
 *   watcher recomputes them from an updated Tree with its `stepHashes`).
 * - The Env node names, in order: files, base, packages, steps. Refs `trees/<name>` and
 *   `envs/<name>` record the result.
 *
 * @example
 * ```ts
 * import { compileEnv } from "./compile.ts";
 * import { stepHashes } from "./step_hashes.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * import type { FileNode } from "../dag/node.ts";
 * declare const store: Store;
 * declare const spec: EnvSpec;
 * declare const fileNode: FileNode;
 * const env = await compileEnv(store, spec);
 * env.tree.setFile("src/a.js", fileNode);
 * const steps = stepHashes(spec, env.tree, { store });
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { putNode } from "../dag/dag.ts";
import { type EnvNode, nodeId, type PackageNode } from "../dag/node.ts";
import type { Tree } from "../dag/tree.ts";
import type { PathFilter } from "../scan/filter.ts";
import { type IngestResult, ingestTree } from "../scan/ingest.ts";
import { StatCache } from "../scan/statcache.ts";
import {
  LOCK_FILE,
  lockPackageNode,
  type LockState,
  lockState,
  readLock,
  resolveLock,
} from "../config/lockfile.ts";
import type { EnvSpec } from "../config/types.ts";
import { baseIdFor, envNode, type StepHash, stepHashes } from "./step_hashes.ts";
import {
  loadQuickStatus,
  type ProofChanges,
  type ProofCheck,
  proofSubject,
  reuseCheck,
  type StatusSummary,
} from "./quick_status.ts";
import { editedTree } from "./proof_update.ts";
import { trackedFilter } from "./tracked.ts";
import { trace } from "../sys/trace.ts";

/** Everything compile produced. */
export interface CompiledEnv {
  spec: EnvSpec;
  name: string;
  /** Id of the Env node. */
  envId: string;
  envNode: EnvNode;
  /** Root Dir id of the tracked files. */
  filesRoot: string;
  /** The tracked tree, for incremental updates by the watcher. */
  tree: Tree;
  /** The filter used for the tracked files. */
  filter: PathFilter;
  /** Tracked files and their total size. */
  files: number;
  bytes: number;
  /** Files answered by the stat cache without reading. */
  cacheHits: number;
  skipped: { path: string; why: string }[];
  /** Every directory the scan read, relative to the project ("" its root). */
  walked: string[];
  /** Id of the stored base reference blob, or null without a base image. */
  baseId: string | null;
  packages: { id: string; node: PackageNode; path?: string }[];
  /** Where the packages came from: a current hd.lock, or resolved now. */
  packagesFrom: "lock" | "resolved";
  lock: LockState;
  steps: StepHash[];
  /**
   * Set when the tree came from the project's proof ({@link treeFromProof}) instead of a scan:
   * how many files were edited in place since the proof was saved.
   */
  proofEdits?: number;
  /** With {@link proofEdits}: the files and walked directories the proof's check found changed. */
  proofChanges?: ProofChanges;
  /**
   * The stat cache the scan used and saved (absent with `noCache`): what loading
   * {@link statCachePath} again would give, without reading and verifying the file twice.
   */
  statCache?: StatCache;
}

/** Options of {@link compileEnv}. */
export interface CompileOptions {
  /** Record refs `trees/<name>` and `envs/<name>` (default true). */
  record?: boolean;
  /** Ignore the stat cache (re-read every file). */
  noCache?: boolean;
  /** Progress while ingesting. */
  onProgress?: (files: number, bytes: number) => void;
  /**
   * Id standing for the base image (e.g. a pulled image's record or rootfs root). Without it,
   * the base is identified by its reference string (see {@link baseRefBytes}).
   */
  baseId?: string;
  /** Ids standing for the images of build stages (`image` of a step), by reference. */
  imageIds?: Record<string, string>;
  /** More paths left out of the tracked files (hd's own output: src/watch/own_output.ts). */
  exclude?: readonly string[];
  /**
   * False: hash only, write no object and take no lock (`hd status`); implies `record: false`.
   * The stat cache (in the project) is still saved. Default true.
   */
  write?: boolean;
  /**
   * Take the tree from the project's proof instead of a scan when it may
   * ({@link treeFromProof}): a writing compile without `exclude` or `noCache`. The result then
   * has no `statCache` (none was loaded).
   */
  fromProof?: boolean;
  /**
   * Called just before the scan reads the project (not when the tree comes from the proof): a
   * session starts its watcher there, so that nothing written while the scan reads goes unseen.
   */
  beforeScan?: () => void;
  /**
   * With `fromProof`: a check of the project's proof made earlier in this process (the early
   * services', src/services/prespawn.ts), used instead of checking again when it is for this
   * compile's subject (src/env/quick_status.ts's reuseCheck). The caller then checks again once it
   * watches.
   */
  checked?: ProofCheck;
}

export { trackedFilter } from "./tracked.ts";

/** Path of the project's stat cache. */
export function statCachePath(spec: EnvSpec): string {
  return `${spec.dir}/.hd/statcache.json`;
}

/** The packages of `spec`: from hd.lock when it is current, else resolved by the providers. */
export async function packagesFor(spec: EnvSpec): Promise<{
  packages: { node: PackageNode; path?: string }[];
  from: "lock" | "resolved";
  lock: LockState;
}> {
  const lock = readLock(`${spec.dir}/${LOCK_FILE}`);
  const state = lockState(spec, lock);
  const source = state === "current" ? lock! : await resolveLock(spec);
  return {
    packages: source.packages.map((p) => ({ node: lockPackageNode(p), path: p.path })),
    from: state === "current" ? "lock" : "resolved",
    lock: state,
  };
}

/** Compiles `spec` into the store; see the module doc. Holds the store's shared lock. */
export async function compileEnv(
  store: Store,
  spec: EnvSpec,
  opts: CompileOptions = {},
): Promise<CompiledEnv> {
  const pk = await packagesFor(spec);
  const write = opts.write ?? true;
  const sink = write ? store : undefined;
  // the proof: an earlier check of it in this process when there is one, else a check now
  const proof = write && opts.fromProof && !opts.noCache && !opts.exclude?.length
    ? (opts.checked && reuseCheck(proofSubject(spec, opts), opts.checked)) ||
      await loadQuickStatus(store.identity().key, spec, proofSubject(spec, opts))
    : null;
  const compile = () => {
    const filter = trackedFilter(spec, opts.exclude);
    const cachePath = statCachePath(spec);
    let cache: StatCache | undefined;
    const proven = proof && treeFromProof(store, spec, proof, pk.lock);
    const r = proven || (() => {
      opts.beforeScan?.();
      cache = opts.noCache ? StatCache.empty(store) : StatCache.load(cachePath, store);
      cache.dir = spec.dir; // for `hd cas verify --repair`
      const scan = ingestTree(store, spec.dir, {
        filter,
        cache,
        onProgress: opts.onProgress ? (p) => opts.onProgress!(p.files, p.bytes) : undefined,
        write,
      });
      cache.save(cachePath);
      return scan;
    })();
    const packages = pk.packages.map((p) => ({
      ...p,
      id: sink ? putNode(sink, p.node) : nodeId(p.node),
    }));
    // (a scan's tree is committed; one from a proof is once its edits are: stored here)
    const filesRoot = r.tree.commit(sink);
    const steps = stepHashes(spec, r.tree, {
      store: sink,
      baseId: opts.baseId,
      imageIds: opts.imageIds,
      files: r.files, // (counting a tree from a proof would load all of it)
    });
    const baseId = baseIdFor(spec, sink, opts.baseId);
    const node = envNode(
      spec.environment.name,
      filesRoot,
      baseId,
      packages.map((p) => p.id),
      steps.map((s) => s.id),
    );
    const envId = sink ? putNode(sink, node) : nodeId(node);
    if (write && (opts.record ?? true)) {
      store.setRef(`trees/${spec.environment.name}`, filesRoot);
      store.setRef(`envs/${spec.environment.name}`, envId);
    }
    return {
      spec,
      name: spec.environment.name,
      envId,
      envNode: node,
      filesRoot,
      tree: r.tree,
      filter,
      files: r.files,
      bytes: r.bytes,
      cacheHits: r.cacheHits,
      skipped: r.skipped,
      walked: r.walked,
      baseId,
      packages,
      packagesFrom: pk.from,
      lock: pk.lock,
      steps,
      ...(opts.noCache || cache === undefined ? {} : { statCache: cache }),
      ...(proven ? { proofEdits: proof!.changed.length + proof!.dirs.length } : {}),
      ...(proven ? { proofChanges: { changed: proof!.changed, dirs: proof!.dirs } } : {}),
    };
  };
  return write ? await store.withLock("shared", compile) : compile();
}

/**
 * The tracked tree from the project's proof (src/env/quick_status.ts), for a writing compile:
 * when the proof holds, or holds but for files edited in place, and the store's `trees/<name>` is
 * the proof's tree (so every node below it is in the store and kept from a gc). The tree loads
 * from the store on demand; the edited files are ingested into it (src/env/proof_update.ts).
 * Null otherwise (then scan): another tree recorded, a lock state other than the proof's, a node
 * that cannot be read, a file that is no longer one.
 */
export function treeFromProof(
  store: Store,
  spec: EnvSpec,
  proof: ProofChanges & { summary: StatusSummary; walked: string[] },
  lock: LockState,
): Pick<IngestResult, "tree" | "files" | "bytes" | "cacheHits" | "skipped" | "walked"> | null {
  const { summary, changed, dirs } = proof;
  if (
    summary.lock !== lock || summary.skipped.length > 0 ||
    store.getRef(`trees/${spec.environment.name}`) !== summary.filesRoot
  ) return null;
  try {
    const edited = store.batch(() =>
      editedTree(store, summary.filesRoot, spec.dir, proof, store, {
        filter: trackedFilter(spec),
        walked: proof.walked,
      })
    );
    if (edited === null) return null;
    trace(
      `compile: the tree from the proof, ${changed.length} file(s) and ${dirs.length} ` +
        `directories changed since`,
    );
    return {
      tree: edited.tree,
      files: summary.files + edited.files,
      bytes: summary.bytes + edited.grew,
      cacheHits: Math.max(0, summary.files - changed.length),
      skipped: [],
      walked: edited.walked,
    };
  } catch {
    return null;
  }
}
