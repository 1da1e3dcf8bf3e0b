/**
 * Compile: an {@link EnvSpec}, its project directory and a store → the Env DAG.
 *
 * - The tracked files ([files] include/exclude, the default excludes, and every declared step
 *   output) are ingested into a Dir tree, with a stat cache at `<project>/.hd/statcache.json`.
 * - Dependencies become stored Package nodes, from hd.lock when it is current, else resolved now.
 * - Each build step becomes a stored BuildStep node. A table step with `inputs` is keyed on the
 *   command, its env, the previous step and the hash of each declared input only (a file's File
 *   node, a directory's Dir node, or a glob's matched set as a Dir); a string step (or a table
 *   without `inputs`) chains: previous step + the whole tracked tree. A base image adds its
 *   reference (stored as a small blob, or the id a caller passes as `baseId`, e.g. the pulled
 *   image) to every step. A build stage's steps (`stage`) chain on their own stage and its `image`
 *   (by `imageIds`) instead; a copy step is keyed by its source step's hash, `src` and `dst`.
 * - The Env node names, in order: files, base, packages, steps. Refs `trees/<name>` and
 *   `envs/<name>` record the result.
 *
 * {@link stepHashes} recomputes only the steps from an updated Tree, for the watcher.
 *
 * @example
 * ```ts
 * import { compileEnv, stepHashes } from "./compile.ts";
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
import { cleanGlob, globBase, globMatcher } from "../sys/glob.ts";
import { blake3Hex } from "../cas/hash.ts";
import type { Store } from "../cas/store.ts";
import { putNode } from "../dag/dag.ts";
import {
  type BuildStepNode,
  compareNames,
  type EnvNode,
  type FileNode,
  nodeId,
  type PackageNode,
} from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { PathFilter } from "../scan/filter.ts";
import { ingestTree } from "../scan/ingest.ts";
import { StatCache } from "../scan/statcache.ts";
import {
  LOCK_FILE,
  lockPackageNode,
  type LockState,
  lockState,
  readLock,
  resolveLock,
} from "../config/lockfile.ts";
import type { BuildStepSpec, EnvSpec, StepCopySpec } from "../config/types.ts";

/** One input of a step and what it hashed to. */
export interface StepInput {
  /** The declared path or glob, or "previous", "files", "base". */
  label: string;
  id: string;
  /** Files the input covers (1 for a file; for "files", every tracked file). */
  files: number;
  /** True when a declared input matched nothing (it then hashes as an empty directory). */
  missing?: boolean;
}

/** A build step with its node and id. */
export interface StepHash {
  index: number;
  spec: BuildStepSpec;
  node: BuildStepNode;
  /** The step's hash: the id of its BuildStep node. */
  id: string;
  inputs: StepInput[];
}

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
}

/** Path of the project's stat cache. */
export function statCachePath(spec: EnvSpec): string {
  return `${spec.dir}/.hd/statcache.json`;
}

/** The filter of tracked files: [files] include/exclude plus every step's declared outputs. */
export function trackedFilter(spec: EnvSpec, extraExclude: readonly string[] = []): PathFilter {
  const outputs = spec.build.steps.flatMap((s) => s.outputs);
  return new PathFilter(spec.files.include, [...spec.files.exclude, ...outputs, ...extraExclude]);
}

const te = new TextEncoder();

/** The bytes stored to stand for a base image reference in the DAG. */
export function baseRefBytes(base: string): Uint8Array {
  return te.encode(`hd-base-image 1\n${base}\n`);
}

/**
 * The id standing for the base image: `override` when given (a pulled image), else the stored
 * (or, without a store, hashed) reference string; null without a base.
 */
export function baseIdFor(spec: EnvSpec, store?: Store, override?: string): string | null {
  const base = spec.environment.base;
  if (base === null) return null;
  if (override !== undefined) return override;
  return store ? store.putObject(baseRefBytes(base)) : blake3Hex(baseRefBytes(base));
}

const GLOB = /[*?[\]{}!]/;

function* walkFiles(d: MemDir, prefix: string): Generator<[string, FileNode]> {
  for (const [name, c] of d.entries) {
    const p = prefix ? `${prefix}/${name}` : name;
    if (c instanceof MemDir) yield* walkFiles(c, p);
    else yield [p, c];
  }
}

function countFiles(d: MemDir): number {
  let n = 0;
  for (const c of d.entries.values()) n += c instanceof MemDir ? countFiles(c) : 1;
  return n;
}

/**
 * The files of `d` (at `prefix`) that `match` takes, for a glob of `depth` segments without `**`,
 * braces or extglobs: such a glob matches only paths of exactly `depth` segments, and what lies
 * below a match; so a directory at that depth is taken whole when it matches and skipped when it
 * does not, without visiting every file below it (`package*.json` looks at the root only).
 */
function* walkMatching(
  d: MemDir,
  prefix: string,
  depth: number,
  match: (p: string) => boolean,
): Generator<[string, FileNode]> {
  const level = prefix === "" ? 1 : prefix.split("/").length + 1;
  for (const [name, c] of d.entries) {
    const p = prefix ? `${prefix}/${name}` : name;
    if (!(c instanceof MemDir)) {
      if (match(p)) yield [p, c];
    } else if (level < depth) yield* walkMatching(c, p, depth, match);
    else if (match(p)) yield* walkFiles(c, p);
  }
}

function emptyDirId(store: Store | undefined): string {
  const t = new Tree(new MemDir());
  return t.commit(store);
}

/** Hashes one declared input against the tree. */
function hashInput(pattern: string, tree: Tree, store: Store | undefined): StepInput {
  const clean = cleanGlob(pattern);
  if (!GLOB.test(clean)) {
    const hit = clean === "" ? tree.root : tree.get(clean);
    if (hit instanceof MemDir) {
      const sub = new Tree(hit);
      return { label: pattern, id: sub.commit(store), files: countFiles(hit) };
    }
    if (hit !== undefined) {
      const id = store ? putNode(store, hit) : nodeId(hit);
      return { label: pattern, id, files: 1 };
    }
    return { label: pattern, id: emptyDirId(store), files: 0, missing: true };
  }
  // a glob covers its matches and what lies below them (`src/*` takes `src/lib/a.js` too)
  const match = globMatcher([clean]);
  const sub = new Tree(new MemDir(tree.root.mode));
  let files = 0;
  // Walk only below the pattern's static prefix (`src` for `src/**/*.js`).
  const base = globBase(clean);
  const start = base === "" ? tree.root : tree.get(base);
  if (start instanceof MemDir) {
    const walk = /\*\*|[{}()!]/.test(clean)
      ? walkFiles(start, base)
      : walkMatching(start, base, clean.split("/").length, match);
    for (const [p, f] of walk) {
      if (match(p)) (sub.setFile(p, f), files++);
    }
  }
  const id = sub.commit(store);
  return files === 0
    ? { label: pattern, id, files: 0, missing: true }
    : { label: pattern, id, files };
}

/**
 * The BuildStep nodes and hashes of every step, from the current tree. With `store`, the nodes
 * (and the File/Dir nodes of the inputs) are written; without, only hashed.
 */
export function stepHashes(
  spec: EnvSpec,
  tree: Tree,
  opts: { store?: Store; baseId?: string; imageIds?: Record<string, string> } = {},
): StepHash[] {
  const store = opts.store;
  const filesRoot = tree.commit(store);
  const filesCount = spec.build.steps.some((s) => s.inputs === null) ? countFiles(tree.root) : 0;
  const baseId = baseIdFor(spec, store, opts.baseId);
  const imageId = (ref: string) =>
    opts.imageIds?.[ref] ??
      (store ? store.putObject(baseRefBytes(ref)) : blake3Hex(baseRefBytes(ref)));
  const out: StepHash[] = [];
  // each chain (the environment's steps; each stage's) has its own previous step; a copy's hash
  // leaves the chain out (its layer is only what it copied), so the next step of the chain takes
  // the step before the copy and the copy as its previous steps
  const previous = new Map<string | null, string[]>();
  const last = (chain: string) => previous.get(chain)?.at(-1) ?? "";
  for (const s of spec.build.steps) {
    const chain = s.stage ?? null;
    const inputs: StepInput[] = [];
    let node: BuildStepNode;
    if (s.copy) {
      // a copy's layer is what it read: the hash of the source stage's last step, src and dst
      for (const c of s.copy) {
        inputs.push({ label: `copy ${c.from}`, id: last(c.from), files: 0 });
      }
      node = {
        type: "buildstep",
        command: copyCommand(s.copy),
        inputs: inputs.map(({ label, id }) => ({ label, id })),
        env: [],
        outputs: [],
        cache: [],
      };
    } else {
      for (const id of previous.get(chain) ?? []) inputs.push({ label: "previous", id, files: 0 });
      const root = s.stage !== undefined ? imageId(s.image!) : baseId;
      if (root !== null) inputs.push({ label: s.stage ? "image" : "base", id: root, files: 0 });
      if (s.inputs === null) inputs.push({ label: "files", id: filesRoot, files: filesCount });
      else for (const p of s.inputs) inputs.push(hashInput(p, tree, store));
      // a stage's steps see their own env, not the environment's
      const env = Object.entries(
        s.stage !== undefined ? s.env : { ...spec.environment.env, ...s.env },
      )
        .sort((a, b) => compareNames(a[0], b[0])) as [string, string][];
      if (s.network === "none") env.push(["HD_NETWORK", "none"]); // part of the step's identity
      // who runs it and where are too (absent: as before, so existing step ids stay)
      const user = s.user ?? spec.environment.user;
      if (user !== undefined && spec.environment.base !== null) env.push(["HD_USER", user]);
      if (s.workdir !== undefined) env.push(["HD_WORKDIR", s.workdir]);
      if (spec.build.shell) env.push(["HD_SHELL", JSON.stringify(spec.build.shell)]);
      node = {
        type: "buildstep",
        command: s.run,
        inputs: inputs.map(({ label, id }) => ({ label, id })),
        env,
        outputs: s.outputs,
        cache: spec.build.cache,
      };
    }
    const id = store ? putNode(store, node) : nodeId(node);
    out.push({ index: s.index, spec: s, node, id, inputs });
    previous.set(chain, s.copy ? [...previous.get(chain) ?? [], id] : [id]);
  }
  return out;
}

/** The command recorded in a copy step's node: its entries, one a line (`from:src -> dst`). */
export function copyCommand(copy: readonly StepCopySpec[]): string {
  return `hd-copy 1\n${copy.map((c) => `${c.from}:${c.src} -> ${c.dst}`).join("\n")}`;
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

/** The Env node for a compiled tree, packages and steps. */
export function envNode(
  name: string,
  filesRoot: string,
  baseId: string | null,
  packageIds: string[],
  stepIds: string[],
): EnvNode {
  const children: EnvNode["children"] = [{ role: "files", id: filesRoot }];
  if (baseId !== null) children.push({ role: "base", id: baseId });
  const seen = new Set<string>();
  for (const id of packageIds) {
    if (!seen.has(id)) (seen.add(id), children.push({ role: "package", id }));
  }
  for (const id of stepIds) children.push({ role: "step", id });
  return { type: "env", name, children };
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
  const compile = () => {
    const filter = trackedFilter(spec, opts.exclude);
    const cachePath = statCachePath(spec);
    const cache = opts.noCache ? StatCache.empty(store) : StatCache.load(cachePath, store);
    cache.dir = spec.dir; // for `hd cas verify --repair`
    const r = ingestTree(store, spec.dir, {
      filter,
      cache,
      onProgress: opts.onProgress ? (p) => opts.onProgress!(p.files, p.bytes) : undefined,
      write,
    });
    cache.save(cachePath);
    const packages = pk.packages.map((p) => ({
      ...p,
      id: sink ? putNode(sink, p.node) : nodeId(p.node),
    }));
    const steps = stepHashes(spec, r.tree, {
      store: sink,
      baseId: opts.baseId,
      imageIds: opts.imageIds,
    });
    const baseId = baseIdFor(spec, sink, opts.baseId);
    const node = envNode(
      spec.environment.name,
      r.root,
      baseId,
      packages.map((p) => p.id),
      steps.map((s) => s.id),
    );
    const envId = sink ? putNode(sink, node) : nodeId(node);
    if (write && (opts.record ?? true)) {
      store.setRef(`trees/${spec.environment.name}`, r.root);
      store.setRef(`envs/${spec.environment.name}`, envId);
    }
    return {
      spec,
      name: spec.environment.name,
      envId,
      envNode: node,
      filesRoot: r.root,
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
      ...(opts.noCache ? {} : { statCache: cache }),
    };
  };
  return write ? await store.withLock("shared", compile) : compile();
}
